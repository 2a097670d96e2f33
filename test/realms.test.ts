/**
 * Bytes made in another realm. Jest runs each test file in a `vm` context, where Node's own `Buffer`s (and a
 * WebSocket's or a stream's ArrayBuffers made outside it) are not instances of the file's `Uint8Array` or
 * `ArrayBuffer`; a page's iframe is another realm too. Node's streams take such bytes; so must every writer and
 * transport of muxwire's that checks what it was given.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import vm from 'node:vm';
import { WebSocket as WsWebSocket } from 'ws';
import { type Session, createWebSocketServer, lightClient, lightServer } from '../src/index.js';
import { type WebChannel, WebSession, streamTransport, webSocketTransport } from '../src/web/index.js';
import { provideWithResolvers } from './interop/libp2p-glue.js';
import { memoryPipe, within } from './helpers.js';

const realm = vm.createContext({});
const ForeignUint8Array = vm.runInContext('Uint8Array', realm) as Uint8ArrayConstructor;
/** The same bytes in a Uint8Array of the other realm. */
const foreign = (bytes: Uint8Array): Uint8Array => new ForeignUint8Array(bytes);
/** The same bytes in an ArrayBuffer of the other realm. */
const foreignBuffer = (bytes: Uint8Array): ArrayBuffer => new ForeignUint8Array(bytes).buffer;

test('the other realm is one: its arrays fail instanceof here', () => {
  assert.equal(foreign(new Uint8Array(1)) instanceof Uint8Array, false);
  assert.equal(foreignBuffer(new Uint8Array(1)) instanceof ArrayBuffer, false);
});

async function readAllWeb(channel: WebChannel): Promise<string> {
  let text = '';
  for await (const chunk of channel.readable as unknown as AsyncIterable<Uint8Array>)
    text += Buffer.from(chunk).toString();
  return text;
}

test("a LightChannel writes another realm's Uint8Array", async () => {
  const [a, b] = memoryPipe();
  const client = lightClient(a, { keepAliveInterval: 0 });
  const server = lightServer(b, { keepAliveInterval: 0 });
  try {
    const channel = client.dial();
    const accepted = server.accept();
    channel.write(foreign(Buffer.from('from ')));
    channel.end(foreign(Buffer.from('elsewhere')));
    const peer = await accepted;
    const chunks: Uint8Array[] = [];
    peer.on('data', (chunk: Uint8Array) => chunks.push(chunk));
    await within(once(peer, 'end'), 5000, 'the end');
    assert.equal(Buffer.concat(chunks).toString(), 'from elsewhere');
    // Still refused: what is no Uint8Array in any realm.
    const other = client.dial();
    assert.throws(() => other.write(new Uint16Array(2) as never), TypeError);
    assert.throws(() => other.write(vm.runInContext('new Uint16Array(2)', realm) as never), TypeError);
  } finally {
    client.destroy();
    server.destroy();
  }
});

test("a WebChannel writes another realm's Uint8Array, and streamTransport reads another realm's ArrayBuffers", async () => {
  const aToB = new TransformStream<Uint8Array, Uint8Array>();
  // What b reads arrives as ArrayBuffers of the other realm (a stream made there).
  const foreignChunks = new TransformStream<Uint8Array, ArrayBuffer>({
    transform: (chunk, controller) => controller.enqueue(foreignBuffer(chunk)),
  });
  void aToB.readable.pipeTo(foreignChunks.writable).catch(() => {});
  const bToA = new TransformStream<Uint8Array, Uint8Array>();
  const a = new WebSession(streamTransport({ readable: bToA.readable, writable: aToB.writable }), 'client', {
    keepAliveInterval: 0,
  });
  const b = new WebSession(streamTransport({ readable: foreignChunks.readable, writable: bToA.writable }), 'server', {
    keepAliveInterval: 0,
  });
  try {
    const channel = a.dial();
    const accepted = b.accept();
    const writer = channel.writable.getWriter();
    await writer.write(foreign(Buffer.from('from ')));
    await writer.write(foreign(Buffer.alloc(100_000, 'x'))); // past the copy limit: sent in place
    await writer.close();
    const text = await within(readAllWeb(await accepted), 5000, 'the channel read');
    assert.equal(text, 'from ' + 'x'.repeat(100_000));
  } finally {
    a.destroy();
    b.destroy();
  }
});

test("webSocketTransport reads another realm's ArrayBuffers as binary messages", async () => {
  const sessions: Session[] = [];
  const server = createWebSocketServer({ port: 0, host: '127.0.0.1', keepAliveInterval: 0 }, (session) => {
    sessions.push(session);
    void (async () => {
      for await (const channel of session) channel.end('pushed from the server');
    })();
  });
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  const socket = new WsWebSocket(`ws://127.0.0.1:${port}/`);
  // The page's WebSocket in another realm: its messages' data are that realm's ArrayBuffers.
  const inOtherRealm = new Proxy(socket, {
    get(target, key, receiver) {
      if (key !== 'addEventListener') return Reflect.get(target, key, receiver) as unknown;
      return (type: string, listener: (event: { data: unknown }) => void) =>
        target.addEventListener(type as 'message', (event: { data: unknown }) =>
          listener(type === 'message' ? { data: foreignBuffer(new Uint8Array(event.data as ArrayBuffer)) } : event),
        );
    },
  });
  const session = new WebSession(webSocketTransport(inOtherRealm), 'client', { keepAliveInterval: 0 });
  try {
    const channel = session.dial();
    await channel.writable.getWriter().close();
    assert.equal(await within(readAllWeb(channel), 5000, 'the server'), 'pushed from the server');
  } finally {
    session.destroy();
    for (const each of sessions) each.destroy();
    server.close();
  }
});

test("a libp2p stream sends another realm's Uint8Array, and the muxer reads one from its connection", async () => {
  provideWithResolvers();
  const { muxwire } = await import('../src/libp2p/index.js');
  const { multiaddrConnectionPair } = await import('@libp2p/utils');
  const [outbound, inbound] = multiaddrConnectionPair();
  // What the listener's connection delivers is made in the other realm.
  inbound.addEventListener('message', (event) => {
    const data = event.data;
    const bytes = data instanceof Uint8Array ? data : data.subarray();
    Object.defineProperty(event, 'data', { value: foreign(bytes) });
  });
  const dialer = muxwire()().createStreamMuxer(outbound);
  const listener = muxwire()().createStreamMuxer(inbound);
  try {
    const accepted = new Promise<import('@libp2p/interface').Stream>((resolve) =>
      listener.addEventListener('stream', (event) => resolve(event.detail), { once: true }),
    );
    const stream = await dialer.createStream();
    stream.send(foreign(Buffer.from('from elsewhere')));
    await stream.close();
    const peer = await within(accepted, 5000, 'the stream');
    let text = '';
    for await (const data of peer) text += Buffer.from(data.subarray()).toString();
    assert.equal(text, 'from elsewhere');
  } finally {
    dialer.abort(new Error('done'));
    listener.abort(new Error('done'));
  }
});

test("an abort reason that is another realm's Error is kept as it is, not wrapped as a value that is none", async () => {
  const foreignError = (message: string): Error =>
    vm.runInContext(`new Error(${JSON.stringify(message)})`, realm) as Error;
  assert.equal(foreignError('x') instanceof Error, false);
  const [a, b] = memoryPipe();
  const client = lightClient(a, { keepAliveInterval: 0 });
  const server = lightServer(b, { keepAliveInterval: 0 });
  try {
    // A dial aborted before the peer's ACK fails with the reason itself.
    const controller = new AbortController();
    const channel = client.dial({ signal: controller.signal });
    channel.on('error', () => {});
    const dialReason = foreignError('the dial was given up');
    controller.abort(dialReason);
    assert.equal(channel.failure, dialReason);
    // close({ signal }) aborted: the session ends with the reason itself, and close() rejects with it.
    const open = client.dial();
    open.on('error', () => {});
    open.write(new Uint8Array([1]));
    const closing = new AbortController();
    const closed = client.close({ signal: closing.signal });
    const closeReason = foreignError('shutting down now');
    closing.abort(closeReason);
    await assert.rejects(closed, (error) => error === closeReason);
    await assert.rejects(client.closed, (error) => error === closeReason);
  } finally {
    client.destroy();
    server.destroy();
  }
  // A WebChannel reset with such a reason fails with it.
  const aToB = new TransformStream<Uint8Array, Uint8Array>();
  const bToA = new TransformStream<Uint8Array, Uint8Array>();
  const web = new WebSession(streamTransport({ readable: bToA.readable, writable: aToB.writable }), 'client', {
    keepAliveInterval: 0,
  });
  const peer = new WebSession(streamTransport({ readable: aToB.readable, writable: bToA.writable }), 'server', {
    keepAliveInterval: 0,
  });
  try {
    const channel = web.dial();
    const resetReason = foreignError('the page gave up');
    channel.reset(resetReason);
    assert.equal(channel.failure, resetReason);
    await assert.rejects(channel.readable.getReader().read(), (error) => error === resetReason);
  } finally {
    web.destroy();
    peer.destroy();
  }
});

test('what only claims to be bytes or an error is refused, and a reason that throws when asked still ends what it aborts', async () => {
  const [a, b] = memoryPipe();
  const client = lightClient(a, { keepAliveInterval: 0 });
  const server = lightServer(b, { keepAliveInterval: 0 });
  try {
    const channel = client.dial();
    // Views that are no Uint8Array, whatever their own Symbol.toStringTag says.
    for (const view of [new DataView(new ArrayBuffer(4)), new Uint16Array(2)]) {
      Object.defineProperty(view, Symbol.toStringTag, { value: 'Uint8Array' });
      assert.throws(() => channel.write(view as never), { name: 'TypeError', message: /takes a Uint8Array/ });
    }
    // A detached array of another realm lost its bytes: refused, as a detached one of this realm is.
    const detached = foreign(new Uint8Array(8));
    structuredClone(detached.buffer, { transfer: [detached.buffer] });
    assert.equal(detached.byteLength, 0);
    assert.throws(() => channel.write(detached), { name: 'TypeError', message: /detached/ });
    // An abort reason whose Symbol.toStringTag getter throws, and one that only claims to be an Error.
    const throwing = {
      get [Symbol.toStringTag](): string {
        throw new Error('the getter threw');
      },
    };
    const claiming = { [Symbol.toStringTag]: 'Error' };
    for (const reason of [throwing, claiming]) {
      const controller = new AbortController();
      const dialled = client.dial({ signal: controller.signal });
      dialled.on('error', () => {});
      controller.abort(reason);
      assert.equal(dialled.destroyed, true);
      assert.equal((dialled.failure as { code?: string }).code, 'ERR_MUX_CHANNEL_ABORTED');
    }
    const closing = new AbortController();
    const closed = client.close({ signal: closing.signal });
    closing.abort(throwing);
    await assert.rejects(closed, (error) => error === throwing);
    await assert.rejects(client.closed, { name: 'SessionClosedError', message: /close\(\) was aborted/ });
  } finally {
    client.destroy();
    server.destroy();
  }
});

test('streamTransport refuses an object that only claims to be an ArrayBuffer', async () => {
  const fake = { [Symbol.toStringTag]: 'ArrayBuffer', length: 12, 0: 0, 1: 0 };
  const readable = new ReadableStream<unknown>({ start: (controller) => controller.enqueue(fake) });
  const session = new WebSession(
    streamTransport({ readable: readable as ReadableStream<Uint8Array>, writable: new WritableStream() }),
    'server',
    { keepAliveInterval: 0 },
  );
  await assert.rejects(within(session.closed, 5000, 'the session'), { name: 'ProtocolError' });
  assert.equal(session.stats().bytesIn, 0);
});
