/**
 * The WebSocket transport's drain poll where the runtime has `scheduler.postTask` (Chromium, Firefox), whose
 * delays browsers do not stretch as they stretch a chain of `setTimeout`s. The scheduler is put in place before
 * muxwire loads, as a browser's is.
 */
import { postTaskDelays as delays } from './support/recording-scheduler.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { type WebSocketLike, webSocketTransport } from '../src/web/index.js';
import { until } from './helpers.js';

const events = { data() {}, drain() {}, end() {}, error() {}, close() {} };

/** A WHATWG-style socket (`send(data)` copies, as the standard says), open, with a settable `bufferedAmount`. */
function copyingSocket(): WebSocketLike & { bufferedAmount: number } {
  const socket = {
    readyState: 1,
    bufferedAmount: 0,
    binaryType: 'blob',
    send(data: Uint8Array): void {
      socket.bufferedAmount += data.length;
    },
    close(): void {},
    addEventListener(): void {},
    removeEventListener(): void {},
  };
  return socket;
}

test("the drain poll uses scheduler.postTask where there is one (a browser's), backs off while bufferedAmount stays, and drain comes once it is low", async () => {
  const socket = copyingSocket();
  let drained = false;
  let drains = 0;
  const transport = webSocketTransport(socket, { highWaterMark: 100, lowWaterMark: 10, pollInterval: 2 });
  transport.start({
    ...events,
    drain: () => {
      drained = true;
      drains++;
    },
  });
  assert.equal(
    transport.write([new Uint8Array(200)], () => {}),
    false,
    'above the high-water mark',
  );
  await until(() => delays.length >= 8, 5000, 'a few polls');
  assert.equal(drained, false, 'no drain while bufferedAmount is above the low-water mark');
  // The interval while the buffer falls (the first poll has nothing to compare with), then doubling while it
  // stays where it is (a stopped peer), up to 32 intervals.
  assert.deepEqual(delays.slice(0, 8), [2, 2, 4, 8, 16, 32, 64, 64]);
  // It falls, still above the low-water mark: the next poll is one interval away again.
  socket.bufferedAmount = 50;
  const before = delays.length;
  await until(() => delays.length >= before + 2, 5000, 'two more polls');
  assert.equal(delays[before], 2);
  socket.bufferedAmount = 10;
  await until(() => drained, 5000, 'drain');
  const polls = delays.length;
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(delays.length, polls, 'polling stopped after drain');
  // A new wait for drain starts at the interval.
  socket.bufferedAmount = 200;
  assert.equal(
    transport.write([new Uint8Array(1)], () => {}),
    false,
  );
  await until(() => delays.length > polls, 5000, 'a poll');
  assert.equal(delays[polls], 2);
  socket.bufferedAmount = 0;
  await until(() => drains === 2, 5000, 'the second drain');
});
