import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReceiveWindow, SessionMemory } from '../src/core/flow.js';
import { SPEC_INITIAL_WINDOW } from '../src/core/options.js';

const KiB = 1024;

test('a window grants exactly the spec 256 KiB and refuses one byte more', () => {
  const w = new ReceiveWindow(SPEC_INITIAL_WINDOW, 16 * 1024 * KiB);
  assert.equal(w.credit, SPEC_INITIAL_WINDOW);
  assert.ok(w.receive(SPEC_INITIAL_WINDOW));
  assert.equal(w.credit, 0);
  assert.equal(w.receive(1), false);
  assert.equal(w.received, SPEC_INITIAL_WINDOW);
});

test('an update is due only once half the window has been read, and restores full credit', () => {
  const w = new ReceiveWindow(SPEC_INITIAL_WINDOW, SPEC_INITIAL_WINDOW);
  w.startEpoch(0);
  w.receive(200 * KiB);
  w.consume(100 * KiB);
  assert.equal(w.updateDue, false);
  w.consume(127 * KiB);
  assert.equal(w.updateDue, false, 'still short of half: 127 KiB read');
  w.consume(128 * KiB);
  assert.equal(w.updateDue, true, 'exactly half read');
  w.consume(200 * KiB);
  assert.equal(w.updateDue, true);
  assert.equal(w.takeIncrement(1), 200 * KiB);
  assert.equal(w.credit, SPEC_INITIAL_WINDOW, 'peer may again send a whole window beyond what is buffered');
  assert.equal(w.updateDue, false);
});

test('auto-tuning doubles the window when a window is read in under two round trips', () => {
  const w = new ReceiveWindow(SPEC_INITIAL_WINDOW, 1024 * KiB);
  w.startEpoch(0);
  w.receive(SPEC_INITIAL_WINDOW);
  w.consume(SPEC_INITIAL_WINDOW);
  const granted: number[] = [];
  // A whole window read in 60 ms with a 50 ms RTT (under two round trips): the window is the bottleneck.
  assert.equal(w.autoTune(60, 50, (extra) => (granted.push(extra), true)), SPEC_INITIAL_WINDOW);
  assert.equal(w.size, 512 * KiB);
  assert.deepEqual(granted, [SPEC_INITIAL_WINDOW]);
  assert.equal(w.takeIncrement(60), 512 * KiB);
});

test('auto-tuning quadruples the window when a window is read far faster than two round trips', () => {
  const w = new ReceiveWindow(SPEC_INITIAL_WINDOW, 16 * 1024 * KiB);
  w.startEpoch(0);
  w.receive(SPEC_INITIAL_WINDOW);
  w.consume(SPEC_INITIAL_WINDOW);
  assert.equal(w.autoTune(10, 50, () => true), 3 * SPEC_INITIAL_WINDOW);
  assert.equal(w.size, 1024 * KiB);
});

test('auto-tuning leaves the window alone when the reader is the bottleneck', () => {
  const w = new ReceiveWindow(SPEC_INITIAL_WINDOW, 1024 * KiB);
  w.startEpoch(0);
  w.receive(SPEC_INITIAL_WINDOW);
  w.consume(SPEC_INITIAL_WINDOW);
  // A window read in 500 ms with a 50 ms RTT: a slow reader, a larger window would not help.
  assert.equal(w.autoTune(500, 50, () => true), 0);
  assert.equal(w.size, SPEC_INITIAL_WINDOW);
});

test('auto-tuning needs an RTT, stops at the maximum, and respects a refused reservation', () => {
  const w = new ReceiveWindow(SPEC_INITIAL_WINDOW, 384 * KiB);
  w.startEpoch(0);
  w.receive(SPEC_INITIAL_WINDOW);
  w.consume(SPEC_INITIAL_WINDOW);
  assert.equal(w.autoTune(1, undefined, () => true), 0, 'no RTT yet');
  assert.equal(w.autoTune(1, 50, () => false), 0, 'memory bound refused');
  assert.equal(w.autoTune(1, 50, () => true), 128 * KiB, 'grows only up to the maximum');
  assert.equal(w.size, 384 * KiB);
  assert.equal(w.autoTune(1, 50, () => true), 0);
});

test('session memory: growth fits under the limit; pressure at half; exhausted at the limit', () => {
  const m = new SessionMemory(1024 * KiB);
  assert.ok(m.reserveGrowth(256 * KiB));
  assert.ok(m.reserveGrowth(512 * KiB));
  assert.equal(m.reserveGrowth(512 * KiB), false, 'would promise more than the limit');
  m.releaseGrowth(512 * KiB);
  m.buffered = 512 * KiB;
  assert.ok(m.underPressure);
  assert.equal(m.exhausted, false);
  assert.equal(m.reserveGrowth(1), false, 'no growth under pressure');
  m.buffered = 1024 * KiB;
  assert.ok(m.exhausted);
});
