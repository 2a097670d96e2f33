/**
 * The Node `Channel` leans on two details of Node's `Readable` and one of its `Writable` that are not public API
 * (see src/node/channel.ts):
 * these tests fail loudly when a Node release changes them, instead of the Channel going silently wrong.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable, Writable } from 'node:stream';
import { setImmediate as tick } from 'node:timers/promises';
import { sessionPair } from './helpers.js';

interface ReadableInternals {
  _readableState: { readingMore: boolean };
}

test("Node's Readable: readingMore set true keeps a push from scheduling _read (the Channel's saved read-more tick)", async () => {
  const counts: number[] = [];
  for (const mark of [false, true]) {
    let reads = 0;
    const readable = new Readable({
      highWaterMark: 1024,
      read() {
        reads++;
      },
    });
    const state = (readable as unknown as ReadableInternals)._readableState;
    assert.equal(typeof state.readingMore, 'boolean', "Node's ReadableState has no boolean readingMore field any more");
    if (mark) state.readingMore = true;
    readable.push(Buffer.alloc(16)); // below the high-water mark: Node schedules maybeReadMore, unless marked
    await tick();
    await tick();
    counts.push(reads);
    readable.destroy();
  }
  assert.ok(counts[0]! > 0, 'without the mark Node calls _read after a push below the high-water mark');
  assert.equal(counts[1], 0, 'with readingMore set, Node no longer skips the read-more pass: Channel must change');
});

test("Node's Readable: read() emits 'data' through the instance's emit (Channel.closeRead drops buffered data unseen that way)", () => {
  const readable = new Readable({ read() {} });
  readable.push(Buffer.from('abc'));
  const events: (string | symbol)[] = [];
  readable.emit = function (this: Readable, event: string | symbol, ...args: unknown[]): boolean {
    events.push(event);
    return event === 'data' ? false : Readable.prototype.emit.call(this, event, ...args);
  } as Readable['emit'];
  assert.notEqual(readable.read(), null);
  Reflect.deleteProperty(readable, 'emit');
  assert.ok(events.includes('data'), "read() no longer emits 'data' through this.emit: Channel.closeRead must change");
  // eslint-disable-next-line @typescript-eslint/unbound-method -- compares the functions themselves
  assert.equal(readable.emit, Readable.prototype.emit, 'removing the own emit restores the prototype one');
  readable.destroy();
});

test("Node's Writable: needDrain set true while a write is in flight makes writableNeedDrain true and brings 'drain' once the buffer empties (Channel.write's per-write cost)", async () => {
  const pending: (() => void)[] = [];
  const writable = new Writable({
    highWaterMark: 1024,
    write(_chunk, _encoding, callback) {
      pending.push(callback);
    },
  });
  assert.equal(writable.write(Buffer.alloc(1)), true);
  assert.equal(writable.write(Buffer.alloc(1)), true);
  const state = (writable as unknown as { _writableState: { needDrain: boolean } })._writableState;
  assert.equal(state.needDrain, false, "Node's WritableState has no boolean needDrain any more");
  state.needDrain = true;
  assert.equal(writable.writableNeedDrain, true, 'needDrain set is what writableNeedDrain reports');
  let drains = 0;
  writable.on('drain', () => drains++);
  for (let turn = 0; turn < 4 && writable.writableLength > 0; turn++) {
    pending.shift()?.();
    await tick();
  }
  assert.equal(writable.writableLength, 0);
  assert.equal(
    drains,
    1,
    "with needDrain set, Node no longer emits 'drain' when its buffer empties: Channel must change",
  );
  writable.destroy();
});

test("a Channel starts with Node's read-more pass marked as running", async () => {
  const pair = await sessionPair();
  try {
    const channel = pair.client.dial();
    assert.equal((channel as unknown as ReadableInternals)._readableState.readingMore, true);
    channel.destroy();
  } finally {
    await pair.close();
  }
});

test("Node's Writable: bufferedRequestCount counts the writes held for _write, not the one in flight (Channel.destroy()'s close as a socket)", () => {
  const pending: (() => void)[] = [];
  const writable = new Writable({
    write(_chunk, _encoding, callback) {
      pending.push(callback);
    },
  });
  const state = (writable as unknown as { _writableState: { bufferedRequestCount: number } })._writableState;
  writable.write(Buffer.alloc(1));
  assert.equal(state.bufferedRequestCount, 0, 'the first write went to _write at once');
  writable.write(Buffer.alloc(1));
  writable.write(Buffer.alloc(1));
  assert.equal(state.bufferedRequestCount, 2, "Node's WritableState no longer counts held writes this way");
  pending.shift()!();
});
