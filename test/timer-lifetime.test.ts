/**
 * Timers that outlive their session: a deadline whose verdict waits for the bytes already received
 * (`afterPendingReads`) must not lose track of a timer armed in between. Each scenario runs in a child process
 * (test/support/child.ts), which must exit by itself.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runChild } from './support/child.js';

/** Runs `scenario` in a child that must exit by itself with code 0; its last line (JSON) and how long it ran. */
async function exitedByItself(scenario: string): Promise<{ result: unknown; ms: number }> {
  const child = await runChild(scenario, {}, 20_000);
  assert.equal(child.signal, null, `the child had to be killed: ${child.stderr}`);
  assert.equal(child.code, 0, child.stderr);
  return { result: JSON.parse(child.stdout.trim().split('\n').pop()!), ms: child.ms };
}

test("a close() made before the close deadline's verdict leaves no timer holding the process", async () => {
  const { result, ms } = await exitedByItself('close-again-before-the-verdict');
  assert.deepEqual(result, { outcome: 'ERR_MUX_CLOSE_TIMEOUT' });
  // Before: the second close() armed a 30 s deadline that the verdict lost track of, and the process waited.
  assert.ok(ms < 10_000, `the process exited ${Math.round(ms)} ms after it started`);
});

test("a dial made before the open deadline's verdict leaves no timer running after the session is destroyed", async () => {
  const { result } = await exitedByItself('dial-before-the-open-verdict');
  assert.deepEqual(result, { late: [] });
});

test('an aborted ping() leaves no deadline holding the process once nobody waits on it', async () => {
  const { result, ms } = await exitedByItself('aborted-ping-over-an-unrefd-socket');
  assert.deepEqual(result, { outcome: 'TimeoutError' });
  // Before: the ping's deadline (keepAliveTimeout, 5 s) held the process after the call gave up.
  assert.ok(ms < 3000, `the process exited ${Math.round(ms)} ms after it started`);
});
