/**
 * muxwire under a test's fake timers, switched on after it loaded, as vitest's, Jest's, sinon's and node:test's
 * are: data keeps flowing, as through a plain socket (src/core/timers.ts takes the functions that schedule it
 * when it loads). Each wait here is bounded by Node's own timers, taken before any faking.
 */
import { afterEach, mock, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import net, { type AddressInfo } from 'node:net';
import { setTimeout as realSleep } from 'node:timers/promises';
import FakeTimers from '@sinonjs/fake-timers';
import { WebSocket } from 'ws';
import { type Channel, type MuxError, type Session, createWebSocketServer, multiplexedClient } from '../src/index.js';
import { connectWebSocket, type WebChannel } from '../src/web/index.js';
import { pseudoRandomBytes, readAll, sessionPair } from './helpers.js';
import { runChild } from './support/child.js';

const realSetTimeout = globalThis.setTimeout;
const realClearTimeout = globalThis.clearTimeout;
const realQueueMicrotask = globalThis.queueMicrotask;

/** Settles as `promise` does, or rejects after `ms` of real time naming `what`. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = realSetTimeout(() => reject(new Error(`${what}: nothing for ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => realClearTimeout(timer));
}

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');
const cleanups: (() => void | Promise<void>)[] = [];
/** What vitest's `vi.useFakeTimers()` fakes by default (sinon's list less `nextTick` and `queueMicrotask`). */
const VITEST_DEFAULT: FakeTimers.FakeMethod[] = [
  'setTimeout',
  'clearTimeout',
  'setImmediate',
  'clearImmediate',
  'setInterval',
  'clearInterval',
  'Date',
  'performance',
];
let fakeClock: FakeTimers.Clock | undefined;
afterEach(async () => {
  globalThis.queueMicrotask = realQueueMicrotask;
  mock.timers.reset();
  fakeClock?.uninstall();
  fakeClock = undefined;
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

test("several channels' bulk echo over TCP completes with node:test's mock timers on (setTimeout and setImmediate faked, never advanced)", async () => {
  const pair = await sessionPair({ transport: 'tcp' });
  cleanups.push(() => pair.close());
  pair.server.on('channel', (channel: Channel) => channel.pipe(channel));
  // What `mock.timers.enable()` fakes by default, less Date (not faked before Node 20.11).
  mock.timers.enable({ apis: ['setTimeout', 'setImmediate'] });
  const payloads = [1, 2, 3, 4].map((seed) => pseudoRandomBytes(2 * 1024 * 1024, seed));
  const echoed = await within(
    Promise.all(
      payloads.map((payload) => {
        const channel = pair.client.dial();
        channel.end(payload);
        return readAll(channel);
      }),
    ),
    20_000,
    'four 2 MiB echoes',
  );
  assert.deepEqual(echoed.map(sha256), payloads.map(sha256));
});

test('a 4 MiB echo over WebSocket completes with queueMicrotask faked (as Jest fakes it by default)', async () => {
  const sessions: Session[] = [];
  const server = createWebSocketServer({ port: 0, host: '127.0.0.1', keepAliveInterval: 0 }, (session) => {
    sessions.push(session);
    session.on('channel', (channel: Channel) => channel.pipe(channel));
  });
  await new Promise<void>((resolve) => server.once('listening', () => resolve()));
  cleanups.push(async () => {
    for (const session of sessions) session.destroy();
    for (const socket of server.clients) socket.terminate();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const { port } = server.address() as AddressInfo;
  const session = await connectWebSocket(`ws://127.0.0.1:${port}`, { WebSocket, keepAliveInterval: 0 });
  cleanups.push(() => session.destroy());
  // Jest's fake `queueMicrotask` holds each task until the test runs the fake clock; this one never does.
  const held: unknown[] = [];
  globalThis.queueMicrotask = (task: () => void) => void held.push(task);
  const payload = pseudoRandomBytes(4 * 1024 * 1024, 9);
  const channel: WebChannel = session.dial();
  const writing = (async () => {
    const writer = channel.writable.getWriter();
    for (let at = 0; at < payload.length; at += 64 * 1024) await writer.write(payload.subarray(at, at + 64 * 1024));
    await writer.close();
  })();
  const reading = (async () => {
    const parts: Uint8Array[] = [];
    const reader = channel.readable.getReader();
    for (let part = await reader.read(); !part.done; part = await reader.read()) parts.push(part.value);
    return Buffer.concat(parts);
  })();
  const [, echoed] = await within(Promise.all([writing, reading]), 20_000, 'a 4 MiB echo');
  assert.equal(sha256(echoed), sha256(payload));
});

/** A loopback TCP peer that reads everything and never answers (a frozen peer), and a client session over it. */
async function silentPeer(options: Parameters<typeof multiplexedClient>[1]): Promise<Session> {
  const server = net.createServer((socket) => socket.resume());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const socket = net.connect((server.address() as AddressInfo).port, '127.0.0.1');
  await new Promise((resolve) => socket.once('connect', resolve));
  const session = multiplexedClient(socket, options);
  cleanups.push(() => {
    session.destroy();
    socket.destroy();
    server.close();
  });
  return session;
}

test("a live peer is not taken for dead when a test's fake clock jumps past keepAliveTimeout again and again", async () => {
  const pair = await sessionPair({ transport: 'tcp', client: { keepAliveInterval: 1000, keepAliveTimeout: 500 } });
  cleanups.push(() => pair.close());
  fakeClock = FakeTimers.withGlobal(globalThis).install({ toFake: VITEST_DEFAULT, shouldClearNativeTimers: true });
  // Each jump fires pings and their deadlines in one synchronous run, where no ping can leave: the verdict waits
  // for a real turn, by which the ping has left (its age counts from there) and its answer is read.
  for (let jump = 0; jump < 10; jump++) {
    fakeClock.tick(1000);
    await realSleep(20);
  }
  assert.equal(pair.client.state, 'open', `closed with ${(pair.client.closeError as MuxError | undefined)?.code}`);
  assert.ok(pair.client.rtt !== undefined, 'pings were answered');
});

test("a silent peer's keep-alive timeout comes a real turn after the fake clock passes it", async () => {
  fakeClock = FakeTimers.withGlobal(globalThis).install({ toFake: VITEST_DEFAULT, shouldClearNativeTimers: true });
  const session = await silentPeer({ keepAliveInterval: 1000, keepAliveTimeout: 500 });
  await realSleep(20); // the first ping (an RTT probe as the session starts) leaves
  fakeClock.tick(1000);
  assert.equal(session.state, 'open', 'the verdict waits for what the connection holds');
  await realSleep(50);
  assert.equal((session.closeError as MuxError | undefined)?.code, 'ERR_MUX_KEEPALIVE_TIMEOUT');
});

test("a dial's open timeout comes a real turn after the fake clock passes it", async () => {
  fakeClock = FakeTimers.withGlobal(globalThis).install({ toFake: VITEST_DEFAULT, shouldClearNativeTimers: true });
  const session = await silentPeer({ keepAliveInterval: 0, openTimeout: 2000 });
  const channel = session.dial();
  const failed = new Promise<MuxError>((resolve) => channel.once('error', resolve));
  fakeClock.tick(2100);
  await realSleep(50);
  assert.equal((await failed).code, 'ERR_MUX_OPEN_TIMEOUT');
  assert.equal(session.state, 'open');
});

test('an exception thrown in a listener surfaces as uncaught with queueMicrotask faked (as Jest fakes it)', async () => {
  const { code, stdout, stderr } = await runChild('listener-throws-under-faked-queueMicrotask');
  assert.notEqual(code, 0, `the process lived on: ${stdout}`);
  assert.match(stderr, /a failed assertion in a listener/);
});
