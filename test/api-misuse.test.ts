/**
 * The API used wrongly, as users do: the `AbortController` passed where its `signal` goes, options that are no
 * object, a misspelt option given to `connect()` or `createServer()` (which pass other names to `node:net`),
 * values of the wrong type. Each is a `TypeError` (or `RangeError` for a value out of range) that says what was
 * wrong, thrown by the synchronous calls and a rejection of the promise-returning ones, before anything changed:
 * no channel entered, no socket made, no waiter left to take a channel or to throw later.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import {
  type Channel,
  ChannelResetError,
  MemoryBudget,
  SessionClosedError,
  connect,
  createServer,
  lightClient,
  lightServer,
  multiplexedClient,
} from '../src/index.js';
import type { LightSession } from '../src/core/index.js';
import { WebSession, connectWebSocket, webSocketTransport } from '../src/web/index.js';
import { provideWithResolvers } from './interop/libp2p-glue.js';
import { memoryPipe, sessionPair, until, within } from './helpers.js';
import { duplexTransport } from '../src/node/transport.js';

const CONTROLLER = { name: 'TypeError', message: /signal must be an AbortSignal \(pass controller\.signal/ };
const NOT_OBJECT = { name: 'TypeError', message: /options must be an object/ };

/** A light client and server over an in-memory pipe, keep-alive off. */
function lightPair(): { client: LightSession; server: LightSession } {
  const [a, b] = memoryPipe();
  return { client: lightClient(a, { keepAliveInterval: 0 }), server: lightServer(b, { keepAliveInterval: 0 }) };
}

/** The promise rejections no one handled, from now until `stop()`. */
function unhandledRejections(): { seen: unknown[]; stop(): void } {
  const seen: unknown[] = [];
  const onUnhandled = (reason: unknown): void => void seen.push(reason);
  process.on('unhandledRejection', onUnhandled);
  return { seen, stop: () => process.off('unhandledRejection', onUnhandled) };
}

test('an AbortController given as the signal: dial() throws, accept(), ping() and close() reject, each before anything changed', async () => {
  const unhandled = unhandledRejections();
  const { client, server } = lightPair();
  try {
    const controller = new AbortController() as unknown as AbortSignal;
    assert.throws(() => client.dial({ signal: controller }), CONTROLLER);
    assert.equal(client.channelCount, 0, 'no channel entered');
    await assert.rejects(server.accept({ signal: controller }), CONTROLLER);
    await assert.rejects(client.ping({ signal: controller }), CONTROLLER);
    await assert.rejects(client.close({ signal: controller }), CONTROLLER);
    assert.equal(client.state, 'open', 'close() did not begin');
    // Nothing left waiting: the next channel goes to the next accept(), and the ping's answer throws nowhere.
    const channel = client.dial();
    channel.end(new Uint8Array([1]));
    const accepted = await within(server.accept(), 2000, 'the channel');
    assert.equal(accepted.id, channel.id);
    assert.ok((await within(client.ping(), 2000, 'a ping')) >= 0);
    // An EventTarget that is no AbortSignal (no `aborted`).
    assert.throws(() => client.dial({ signal: new EventTarget() as AbortSignal }), {
      name: 'TypeError',
      message: 'muxwire: signal must be an AbortSignal',
    });
    // Not a signal at all.
    assert.throws(() => client.dial({ signal: 'soon' as unknown as AbortSignal }), {
      name: 'TypeError',
      message: 'muxwire: signal must be an AbortSignal',
    });
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(unhandled.seen, []);
  } finally {
    unhandled.stop();
    client.destroy();
    server.destroy();
  }
});

test('options that are no object: dial() throws, accept(), ping() and close() reject with a TypeError that says so', async () => {
  const { client, server } = lightPair();
  try {
    assert.throws(() => client.dial(null as never), NOT_OBJECT);
    const calls = [
      () => server.accept(null as never),
      () => client.ping(5 as never),
      () => client.close('soon' as never),
    ];
    for (const call of calls) {
      let result: Promise<unknown> | undefined;
      assert.doesNotThrow(() => (result = call()), 'rejects rather than throws');
      await assert.rejects(result!, NOT_OBJECT);
    }
    assert.equal(client.state, 'open');
  } finally {
    client.destroy();
    server.destroy();
  }
});

test('connect() with an AbortController as its signal, or without options, rejects before any connection is made', async () => {
  const server = net.createServer();
  let connections = 0;
  server.on('connection', (socket) => {
    connections++;
    socket.destroy();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  try {
    const controller = new AbortController() as unknown as AbortSignal;
    await assert.rejects(connect({ host: '127.0.0.1', port, signal: controller }), CONTROLLER);
    await assert.rejects(connect(undefined as never), NOT_OBJECT);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(connections, 0);
  } finally {
    server.close();
  }
});

test('connectWebSocket() with an AbortController as its signal, or null options, rejects before any socket is made', async () => {
  let made = 0;
  const WebSocket = function CountingWebSocket() {
    made++;
  } as never;
  const controller = new AbortController() as unknown as AbortSignal;
  await assert.rejects(connectWebSocket('ws://127.0.0.1:9/', { WebSocket, signal: controller }), CONTROLLER);
  let result: Promise<unknown> | undefined;
  assert.doesNotThrow(() => (result = connectWebSocket('ws://127.0.0.1:9/', null as never)));
  await assert.rejects(result!, NOT_OBJECT);
  assert.equal(made, 0);
});

test('a misspelt session option given to connect() or createServer() is a TypeError that names the option meant', async () => {
  await assert.rejects(connect({ host: '127.0.0.1', port: 9, keepaliveInterval: 0 } as never), {
    name: 'TypeError',
    message: 'muxwire: unknown option keepaliveInterval (did you mean keepAliveInterval?)',
  });
  assert.throws(() => createServer({ maxInboundStream: 0 } as never, () => {}), {
    name: 'TypeError',
    message: 'muxwire: unknown option maxInboundStream (did you mean maxInboundStreams?)',
  });
  // Two edits away, and letter case aside.
  assert.throws(() => createServer({ maxInbundStream: 0 } as never, () => {}), {
    name: 'TypeError',
    message: 'muxwire: unknown option maxInbundStream (did you mean maxInboundStreams?)',
  });
  assert.throws(() => createServer({ KEEPALIVEINTERVAL: 0 } as never, () => {}), {
    name: 'TypeError',
    message: 'muxwire: unknown option KEEPALIVEINTERVAL (did you mean keepAliveInterval?)',
  });
  // net's own options still go to net.
  const server = createServer({ pauseOnConnect: false, noDelay: true, keepAlive: true }, () => {});
  server.close();
});

test('names on Object.prototype are no session options (toString, constructor, hasOwnProperty)', () => {
  const [a] = memoryPipe();
  try {
    for (const name of ['toString', 'constructor', 'hasOwnProperty']) {
      assert.throws(() => multiplexedClient(a, { [name]: 1 }), {
        name: 'TypeError',
        message: `muxwire: unknown option ${name}`,
      });
    }
  } finally {
    a.destroy();
  }
});

test('session.destroy() with a value that is not an Error ends the session with a SessionClosedError that says it', async () => {
  const pair = await sessionPair();
  try {
    const channel = pair.client.dial();
    const failed = new Promise<unknown>((resolve) => channel.once('error', resolve));
    pair.client.destroy('shutting down' as never);
    const error = await within(failed, 2000, "the channel's error");
    assert.ok(error instanceof SessionClosedError, String(error));
    assert.match(error.message, /shutting down/);
    assert.equal(pair.client.closeError, error);
    await assert.rejects(pair.client.closed, (reason) => reason === error);
  } finally {
    await pair.close();
  }
});

test('a Channel destroyed with an error keeps it as failure, as a LightChannel does', async () => {
  const pair = await sessionPair();
  try {
    const channel: Channel = pair.client.dial();
    channel.on('error', () => {});
    const reason = new Error('app gave up');
    channel.destroy(reason);
    assert.equal(channel.failure, reason);
  } finally {
    await pair.close();
  }
});

test('a value of the wrong type is a TypeError that names its type; one out of range a RangeError that shows it', async () => {
  assert.throws(() => new MemoryBudget('5' as never), {
    name: 'TypeError',
    message: "muxwire: a memory budget's limit must be a number, got string",
  });
  assert.throws(() => new MemoryBudget(-1), { name: 'RangeError', message: /got -1/ });
  // A budget's counts too: one NaN reserved or released would end the bound for every session sharing it.
  const budget = new MemoryBudget(10_000);
  assert.equal(budget.tryReserve(4_000), true);
  for (const bytes of [NaN, -5_000, 1.5, Infinity]) {
    assert.throws(() => budget.tryReserve(bytes), {
      name: 'RangeError',
      message: `muxwire: bytes reserved must be a non-negative integer, got ${bytes}`,
    });
    assert.throws(() => budget.release(bytes), {
      name: 'RangeError',
      message: `muxwire: bytes released must be a non-negative integer, got ${bytes}`,
    });
  }
  assert.throws(() => budget.tryReserve('5' as never), {
    name: 'TypeError',
    message: 'muxwire: bytes reserved must be a number, got string',
  });
  assert.throws(() => budget.release(undefined as never), {
    name: 'TypeError',
    message: 'muxwire: bytes released must be a number, got undefined',
  });
  assert.equal(budget.reserved, 4_000);
  assert.equal(budget.tryReserve(1e12), false);
  budget.release(9_000);
  assert.equal(budget.reserved, 0);
  const socket = {
    readyState: 1,
    binaryType: 'arraybuffer',
    send() {},
    addEventListener() {},
    removeEventListener() {},
  };
  assert.throws(() => webSocketTransport(socket as never, { highWaterMark: '1' as never }), {
    name: 'TypeError',
    message: 'muxwire: highWaterMark must be a number, got string',
  });
  assert.throws(() => webSocketTransport(socket as never, { lowWaterMark: -1 }), {
    name: 'RangeError',
    message: /lowWaterMark must be a number >= 0, got -1/,
  });
  // Longer than a timer takes: Node would poll every 1 ms instead, with a warning each time.
  assert.throws(() => webSocketTransport(socket as never, { pollInterval: 2 ** 31 }), {
    name: 'RangeError',
    message: 'muxwire: pollInterval must be a number from 0 to 2147483647, got 2147483648',
  });
  const pair = await sessionPair();
  try {
    const channel = pair.client.dial();
    assert.throws(() => channel.setTimeout('100' as never), {
      name: 'TypeError',
      message: 'muxwire: channel timeout must be a number, got string',
    });
    assert.throws(() => channel.setTimeout(-5), { name: 'RangeError', message: /got -5/ });
  } finally {
    await pair.close();
  }
});

test('a WebSession and webSocketTransport refuse options that are no object, as every session does', () => {
  const socket = {
    readyState: 1,
    binaryType: 'arraybuffer',
    send() {},
    addEventListener() {},
    removeEventListener() {},
  };
  assert.throws(() => webSocketTransport(socket as never, null as never), NOT_OBJECT);
  const transport = webSocketTransport(socket as never);
  assert.throws(() => new WebSession(transport, 'client', null as never), NOT_OBJECT);
  const [a] = memoryPipe();
  try {
    assert.throws(() => lightClient(a, null as never), NOT_OBJECT);
  } finally {
    a.destroy();
  }
});

test('LightChannel.destroy() with a value that is not an Error fails the channel with a ChannelResetError that says it', async () => {
  const { client, server } = lightPair();
  try {
    const channel = client.dial();
    const failed = new Promise<unknown>((resolve) => channel.once('error', resolve));
    channel.destroy('gave up' as never);
    const error = await within(failed, 2000, "the channel's error");
    assert.ok(error instanceof ChannelResetError, String(error));
    assert.equal(error.code, 'ERR_MUX_CHANNEL_ABORTED');
    assert.match(error.message, /gave up/);
    assert.equal(channel.failure, error);
    // null is none, as for a Node stream.
    const quiet = client.dial();
    quiet.on('error', () => assert.fail('no error for destroy(null)'));
    quiet.destroy(null as never);
    assert.equal(quiet.failure, undefined);
  } finally {
    client.destroy();
    server.destroy();
  }
});

test('the libp2p muxer: an AbortController as the signal of close() or createStream() is refused before anything changes', async () => {
  provideWithResolvers();
  const { muxwire } = await import('../src/libp2p/index.js');
  const { multiaddrConnectionPair } = await import('@libp2p/utils');
  const unhandled = unhandledRejections();
  const [outbound, inbound] = multiaddrConnectionPair();
  const dialer = muxwire()().createStreamMuxer(outbound);
  const listener = muxwire()().createStreamMuxer(inbound);
  try {
    const controller = new AbortController() as unknown as AbortSignal;
    await assert.rejects(dialer.createStream({ signal: controller }), CONTROLLER);
    const stream = await dialer.createStream();
    await assert.rejects(dialer.close({ signal: controller }), CONTROLLER);
    assert.equal(dialer.status, 'open', 'closing did not begin');
    assert.equal(stream.status, 'open', 'the stream is untouched');
    // A stream's close() and closeRead() too: refused before libp2p marks the stream closing, so it still closes.
    await assert.rejects(stream.close({ signal: controller }), CONTROLLER);
    await assert.rejects(stream.closeRead({ signal: controller }), CONTROLLER);
    assert.equal(stream.writeStatus, 'writable');
    assert.equal(stream.readStatus, 'readable');
    // null is none, as libp2p's own code takes it.
    const nulled = { signal: null as unknown as AbortSignal };
    const other = await dialer.createStream(nulled);
    await other.close(nulled);
    assert.equal(other.writeStatus, 'closed');
    assert.ok((await dialer.ping(nulled)) >= 0);
    // An aborted signal: refused before libp2p marks the stream closing, so close() works afterwards.
    await assert.rejects(stream.close({ signal: AbortSignal.abort() }), { name: 'AbortError' });
    assert.equal(stream.writeStatus, 'writable');
    await stream.close();
    assert.equal(stream.writeStatus, 'closed', 'the FIN went');
    // Closed already: close() returns at once whatever its signal, as libp2p's own does.
    await stream.close({ signal: AbortSignal.abort() });
    // One that aborts once the FIN is queued changes nothing: the close goes through (as libp2p's yamux).
    const third = await dialer.createStream();
    third.send(new Uint8Array(100 * 1024)); // (under the stream's mark: close() goes straight to the hook, which waits for it)
    const aborting = new AbortController();
    const closing = third.close({ signal: aborting.signal });
    aborting.abort();
    await closing.catch(() => {});
    await within(
      until(() => third.writeStatus === 'closed'),
      3000,
      'the stream to close its writing',
    );
    await dialer.close(nulled);
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual(unhandled.seen, []);
  } finally {
    unhandled.stop();
    dialer.abort(new Error('done'));
    listener.abort(new Error('done'));
  }
});

test('an option a call does not take is a TypeError that names it and lists those it takes, before anything changed', async () => {
  const unhandled = unhandledRejections();
  const pair = await sessionPair();
  const [a, b] = memoryPipe();
  const page = new WebSession(duplexTransport(a), 'client', { keepAliveInterval: 0 });
  const other = new WebSession(duplexTransport(b), 'server', { keepAliveInterval: 0 });
  try {
    const { client, server } = pair;
    // Before: each was ignored; `dial({ timeout })` meant as a deadline set none.
    assert.throws(() => client.dial({ timeout: 1000 } as never), {
      name: 'TypeError',
      message: 'muxwire: dial() takes no option timeout (its options: signal, openTimeout, allowHalfOpen)',
    });
    assert.throws(() => client.dial({ opentimeout: 1000 } as never), /takes no option opentimeout/);
    assert.equal(client.channelCount, 0, 'no channel entered');
    await assert.rejects(server.accept({ timeout: 10 } as never), {
      name: 'TypeError',
      message: 'muxwire: accept() takes no option timeout (its options: signal)',
    });
    await assert.rejects(
      client.ping({ timeout: 10 } as never),
      /ping\(\) takes no option timeout \(its options: signal\)/,
    );
    await assert.rejects(
      client.close({ signl: undefined } as never),
      /close\(\) takes no option signl \(its options: timeout, signal\)/,
    );
    assert.equal(client.state, 'open', 'close() did not begin');
    // A page's channel has no allowHalfOpen (it ends its side with closeWrite()): not taken and ignored.
    assert.throws(
      () => page.dial({ allowHalfOpen: false } as never),
      /dial\(\) takes no option allowHalfOpen \(its options: signal, openTimeout\)/,
    );
    // What each takes still goes, undefined values too.
    const channel = client.dial({ signal: undefined, openTimeout: 5000, allowHalfOpen: false });
    channel.end('x');
    const accepted = await within(server.accept({ signal: undefined }), 2000, 'the channel');
    assert.equal(accepted.id, channel.id);
    accepted.resume();
    accepted.end();
    assert.equal(typeof (await client.ping({ signal: undefined })), 'number');
    await within(client.close({ timeout: 2000, signal: undefined }), 3000, 'the close');
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(unhandled.seen, []);
  } finally {
    unhandled.stop();
    page.destroy();
    other.destroy();
    await pair.close();
  }
});
