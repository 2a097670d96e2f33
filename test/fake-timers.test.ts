/**
 * muxwire under a test's fake timers, switched on after it loaded, as vitest's, Jest's, sinon's and node:test's
 * are: data keeps flowing, as through a plain socket (src/core/timers.ts takes the functions that schedule it
 * when it loads). Each wait here is bounded by Node's own timers, taken before any faking.
 */
import { afterEach, mock, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { WebSocket } from 'ws';
import { type Channel, type Session, createWebSocketServer } from '../src/index.js';
import { connectWebSocket, type WebChannel } from '../src/web/index.js';
import { pseudoRandomBytes, readAll, sessionPair } from './helpers.js';

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
afterEach(async () => {
  globalThis.queueMicrotask = realQueueMicrotask;
  mock.timers.reset();
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
