/**
 * Timers that outlive their session: a deadline whose verdict waits for the bytes already received
 * (`afterPendingReads`) must not lose track of a timer armed in between. Each scenario runs in a child process
 * (test/support/child.ts), which must exit by itself.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runChild } from './support/child.js';

function lastLine(stdout: string): unknown {
  return JSON.parse(stdout.trim().split('\n').pop()!);
}

test("a close() made before the close deadline's verdict leaves no timer holding the process", async () => {
  const child = await runChild('close-again-before-the-verdict', {}, 20_000);
  assert.equal(child.signal, null, `the child had to be killed: ${child.stderr}`);
  assert.equal(child.code, 0, child.stderr);
  assert.deepEqual(lastLine(child.stdout), { outcome: 'ERR_MUX_CLOSE_TIMEOUT' });
  // Before: the second close() armed a 30 s deadline that the verdict lost track of, and the process waited.
  assert.ok(child.ms < 10_000, `the process exited ${Math.round(child.ms)} ms after it started`);
});

test("a dial made before the open deadline's verdict leaves no timer running after the session is destroyed", async () => {
  const child = await runChild('dial-before-the-open-verdict', {}, 20_000);
  assert.equal(child.signal, null, `the child had to be killed: ${child.stderr}`);
  assert.equal(child.code, 0, child.stderr);
  assert.deepEqual(lastLine(child.stdout), { late: [] });
});

test('an aborted ping() leaves no deadline holding the process once nobody waits on it', async () => {
  const child = await runChild('aborted-ping-over-an-unrefd-socket', {}, 20_000);
  assert.equal(child.signal, null, `the child had to be killed: ${child.stderr}`);
  assert.equal(child.code, 0, child.stderr);
  assert.deepEqual(lastLine(child.stdout), { outcome: 'TimeoutError' });
  // Before: the ping's deadline (keepAliveTimeout, 5 s) held the process after the call gave up.
  assert.ok(child.ms < 3000, `the process exited ${Math.round(child.ms)} ms after it started`);
});
