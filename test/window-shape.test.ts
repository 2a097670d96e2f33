// The receive path reads every channel's ReceiveWindow on every Data frame, so V8 optimises it for the
// window's hidden class (its "map"). A field that starts as a small integer and is later given a fraction
// changes the class of every window: the optimised receive path is thrown away ("wrong map") and compiled
// again in the middle of a transfer (issue 16: this happened on bulk-1's server at its first failed growth
// trial, ~80 MiB in). The check runs in a child process, since it needs V8's `%HaveSameMap`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const FLOW = fileURLToPath(new URL('../src/core/flow.js', import.meta.url));

// `untouched` is made first and never used again, so it keeps the class windows start with; `tried` then goes
// through a growth trial that fails (the same steps as flow.test.ts's "a growth made on the bound that does
// not pay is undone"), at fractional times as `performance.now()` gives them.
const SCRIPT = `
const { ReceiveWindow } = await import(process.argv[1]);
const KiB = 1024, START = 256 * KiB;
const untouched = new ReceiveWindow(START, 64 * 1024 * KiB);
const tried = new ReceiveWindow(START, 64 * 1024 * KiB);
tried.startEpoch(0.25);
tried.receive(START);
tried.consume(128 * KiB);
const grown = tried.autoTune(0.75, undefined, () => true, 35.5);
tried.takeIncrement(0.75);
tried.consume(START);
let now = 1.375;
for (let i = 0; i < 40 && tried.consumed < 9 * 1024 * KiB; i++) {
  now += 50.125;
  tried.receive(256 * KiB);
  tried.consume(tried.received);
  tried.takeIncrement(now);
}
const undone = tried.autoTune(now, 50, () => true);
console.log(JSON.stringify({ grown, undone, sameMap: %HaveSameMap(untouched, tried) }));
`;

test('a failed growth trial at fractional times leaves the window with the hidden class windows start with', () => {
  const out = execFileSync(process.execPath, ['--allow-natives-syntax', '--input-type=module', '-e', SCRIPT, FLOW], {
    encoding: 'utf8',
    timeout: 30_000,
  });
  const result = JSON.parse(out) as { grown: number; undone: number; sameMap: boolean };
  assert.ok(result.grown > 0, `the window grew (${result.grown})`);
  assert.ok(result.undone < 0, `the growth was undone (${result.undone})`);
  assert.equal(result.sameMap, true, 'a field of the window changed representation: every window changes class');
});
