/**
 * Arrays that claim other bytes than they hold: an own `length`, `byteLength`, `byteOffset` or `buffer`
 * property, a subclass whose getters or `slice()` say otherwise (a Node `Buffer`'s `slice()` is a view), a
 * `Proxy` of a `Uint8Array`, and such arrays of another realm. Every writer hands the session the bytes the
 * built-ins say the array holds, so a frame's header and its payload agree and the session's other channels go
 * on; what is no `Uint8Array` is refused.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import vm from 'node:vm';
import { WebSocket as WsWebSocket } from 'ws';
import { type Channel, createWebSocketServer, lightClient, lightServer } from '../src/index.js';
import type { LightChannel, LightSession } from '../src/core/index.js';
import { type WebChannel, WebSession, streamTransport, webSocketTransport } from '../src/web/index.js';
import { provideWithResolvers } from './interop/libp2p-glue.js';
import { readAll, sessionPair, tcpPair, until, within } from './helpers.js';

const SIZE = 100;
const realm = vm.createContext({});
const ForeignUint8Array = vm.runInContext('Uint8Array', realm) as Uint8ArrayConstructor;

/** A Buffer of 200 bytes: its first half 9s, its second half 2s. The lies below are views of its second half. */
function backing(make: (size: number) => Uint8Array = (size) => new Uint8Array(size)): Uint8Array {
  const whole = make(2 * SIZE);
  whole.fill(9, 0, SIZE);
  whole.fill(2, SIZE);
  return whole;
}

/** 100 bytes of 2 (the second half of `backing()`), each claiming something else. */
function liars(): [string, Uint8Array][] {
  const view = (make?: (size: number) => Uint8Array): Uint8Array => backing(make).subarray(SIZE);
  const withOwn = (name: string, value: unknown, make?: (size: number) => Uint8Array): Uint8Array =>
    Object.defineProperty(view(make), name, { value });
  class LongerThanItIs extends Uint8Array {
    override get length(): number {
      return 50 * SIZE;
    }
    override get byteLength(): number {
      return 50 * SIZE;
    }
  }
  const longer = new LongerThanItIs(backing().buffer as ArrayBuffer, SIZE, SIZE);
  const foreign = (size: number): Uint8Array => new ForeignUint8Array(size);
  return [
    ['own length 0', withOwn('length', 0)],
    ['own byteLength 0', withOwn('byteLength', 0)],
    ['own byteOffset 0', withOwn('byteOffset', 0)],
    ['own buffer (another one)', withOwn('buffer', new Uint8Array(2 * SIZE).fill(7).buffer)],
    ['a subclass whose length getters say 5,000', longer],
    ["another realm's, own byteOffset 0", withOwn('byteOffset', 0, foreign)],
    ["another realm's, own byteLength 0", withOwn('byteLength', 0, foreign)],
  ];
}

const twos = Buffer.alloc(SIZE, 2);

async function lightPair(): Promise<{ client: LightSession; server: LightSession; close(): void }> {
  const [a, b] = await tcpPair();
  const client = lightClient(a, { keepAliveInterval: 0 });
  const server = lightServer(b, { keepAliveInterval: 0 });
  return {
    client,
    server,
    close() {
      client.destroy();
      server.destroy();
      a.destroy();
      b.destroy();
    },
  };
}

function readLight(channel: LightChannel): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Uint8Array[] = [];
    channel.on('data', (chunk: Uint8Array) => chunks.push(chunk));
    channel.on('end', () => resolve(Buffer.concat(chunks)));
    channel.on('error', reject);
  });
}

test('a LightChannel over TCP sends the bytes an array holds, whatever it claims, and the next channel is whole', async () => {
  for (const [what, data] of liars()) {
    const pair = await lightPair();
    try {
      const channel = pair.client.dial();
      channel.end(data);
      const peer = await within(pair.server.accept(), 3000, `${what}: the channel`);
      assert.deepEqual(await within(readLight(peer), 3000, `${what}: its bytes`), twos, what);
      // The frames after it read as frames: the session is whole.
      const next = pair.client.dial();
      next.end(Buffer.from('after'));
      const nextPeer = await within(pair.server.accept(), 3000, `${what}: the next channel`);
      assert.equal((await within(readLight(nextPeer), 3000, `${what}: the next bytes`)).toString(), 'after', what);
    } finally {
      pair.close();
    }
  }
});

test('a Node Channel sends the bytes a Buffer holds, whatever its own length says, alone (_write) or corked with another (_writev)', async () => {
  for (const [claimed, corked] of [
    [0, false],
    [50 * SIZE, false],
    [0, true],
    [50 * SIZE, true],
  ] as const) {
    const what = `own length ${claimed}${corked ? ', corked' : ''}`;
    const pair = await sessionPair({ transport: 'tcp' });
    try {
      const accepted = new Promise<Channel>((resolve) => pair.server.once('channel', resolve));
      const data = Object.defineProperty(Buffer.from(backing().buffer as ArrayBuffer, SIZE, SIZE), 'length', {
        value: claimed,
      });
      const channel = pair.client.dial();
      if (corked) {
        channel.cork();
        channel.write(data);
        channel.end(Buffer.alloc(SIZE, 2)); // (end() uncorks: both reach the channel in one _writev)
      } else channel.end(data);
      const peer = await within(accepted, 3000, 'the channel');
      const expected = corked ? Buffer.alloc(2 * SIZE, 2) : twos;
      assert.deepEqual(await within(readAll(peer), 3000, 'its bytes'), expected, what);
      const next = pair.client.dial();
      const nextAccepted = new Promise<Channel>((resolve) => pair.server.once('channel', resolve));
      next.end('after');
      assert.equal((await within(readAll(await nextAccepted), 3000, 'the next bytes')).toString(), 'after');
    } finally {
      await pair.close();
    }
  }
});

function webPair(): { client: WebSession; server: WebSession; close(): void } {
  const aToB = new TransformStream<Uint8Array, Uint8Array>();
  const bToA = new TransformStream<Uint8Array, Uint8Array>();
  const client = new WebSession(streamTransport({ readable: bToA.readable, writable: aToB.writable }), 'client', {
    keepAliveInterval: 0,
  });
  const server = new WebSession(streamTransport({ readable: aToB.readable, writable: bToA.writable }), 'server', {
    keepAliveInterval: 0,
  });
  return {
    client,
    server,
    close() {
      client.destroy();
      server.destroy();
    },
  };
}

async function readWeb(channel: WebChannel): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of channel.readable as unknown as AsyncIterable<Uint8Array>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

test('a WebChannel sends the bytes an array holds, whatever it claims; a Proxy or an object that only inherits from Uint8Array is refused', async () => {
  for (const [what, data] of liars()) {
    const pair = webPair();
    try {
      const channel = pair.client.dial();
      const writer = channel.writable.getWriter();
      await writer.write(data);
      await writer.close();
      const peer = await within(pair.server.accept(), 3000, `${what}: the channel`);
      assert.deepEqual(await within(readWeb(peer), 3000, `${what}: its bytes`), twos, what);
    } finally {
      pair.close();
    }
  }
  for (const [what, data] of [
    ['a Proxy of a Uint8Array', new Proxy(new Uint8Array(SIZE).fill(2), {})],
    ['an object that inherits from Uint8Array', Object.create(Uint8Array.prototype) as Uint8Array],
  ] as const) {
    const pair = webPair();
    try {
      const channel = pair.client.dial();
      await assert.rejects(
        channel.writable.getWriter().write(data),
        { name: 'TypeError', message: /Uint8Array/ },
        what,
      );
      assert.ok(channel.failure instanceof TypeError, what);
    } finally {
      pair.close();
    }
  }
});

test("a WebChannel's small write of a Node Buffer is copied when written: refilling the Buffer once the write resolved changes nothing sent", async () => {
  const pair = webPair();
  try {
    const channel = pair.client.dial();
    const writer = channel.writable.getWriter();
    const data = Buffer.alloc(SIZE, 2);
    await writer.write(data); // resolves at once (copied: Buffer's own slice() is a view, which it must not use)
    data.fill(0x58);
    await writer.close();
    const peer = await within(pair.server.accept(), 3000, 'the channel');
    assert.deepEqual(await within(readWeb(peer), 3000, 'its bytes'), twos);
  } finally {
    pair.close();
  }
});

test('a WebChannel over a ws WebSocket sends a large in-place write of an array whose own byteLength lies as the bytes it holds', async () => {
  const sessions: { destroy(): void }[] = [];
  let received: Promise<Buffer> | undefined;
  const server = createWebSocketServer(
    { port: 0, host: '127.0.0.1', keepAliveInterval: 0, maxFrameSize: 1024 * 1024 },
    (session) => {
      sessions.push(session);
      received = new Promise<Buffer>((resolve, reject) => {
        session.once('channel', (channel: Channel) => void readAll(channel).then(resolve, reject));
      });
    },
  );
  try {
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    const socket = new WsWebSocket(`ws://127.0.0.1:${port}/`);
    await once(socket, 'open');
    const session = new WebSession(webSocketTransport(socket), 'client', {
      keepAliveInterval: 0,
      maxFrameSize: 1024 * 1024,
    });
    sessions.push(session);
    const channel = session.dial();
    const writer = channel.writable.getWriter();
    await writer.write(new Uint8Array([2]));
    // Once the server's 2 MiB window is here, 300 KiB leave as one frame, in place, as a message of their own.
    await within(
      until(() => channel.stats().sendWindow >= 1024 * 1024),
      3000,
      'the window',
    );
    const data = Object.defineProperty(new Uint8Array(300 * 1024).fill(2), 'byteLength', { value: 0 });
    await writer.write(data);
    await writer.close();
    await within(
      until(() => received !== undefined),
      3000,
      'the session at the server',
    );
    assert.deepEqual(await within(received!, 5000, 'the bytes at the server'), Buffer.alloc(300 * 1024 + 1, 2));
  } finally {
    for (const session of sessions) session.destroy();
    server.close();
  }
});

test('a libp2p stream sends the bytes an array holds, whatever its own properties claim', async () => {
  provideWithResolvers();
  const { muxwire } = await import('../src/libp2p/index.js');
  const { multiaddrConnectionPair } = await import('@libp2p/utils');
  for (const [what, data] of liars()) {
    const [outbound, inbound] = multiaddrConnectionPair();
    const dialer = muxwire()().createStreamMuxer(outbound);
    const listener = muxwire()().createStreamMuxer(inbound);
    try {
      const accepted = new Promise<import('@libp2p/interface').Stream>((resolve) =>
        listener.addEventListener('stream', (event) => resolve(event.detail), { once: true }),
      );
      const stream = await dialer.createStream();
      stream.send(data);
      await stream.close();
      const peer = await within(accepted, 3000, `${what}: the stream`);
      const chunks: Uint8Array[] = [];
      for await (const chunk of peer) chunks.push(chunk.subarray());
      assert.deepEqual(Buffer.concat(chunks), twos, what);
    } finally {
      dialer.abort(new Error('done'));
      listener.abort(new Error('done'));
    }
  }
});
