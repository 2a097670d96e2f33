/**
 * The API reference (`npm run docs`: TypeDoc renders the TSDoc comments, configured by typedoc.json) renders
 * without a warning: every type a user meets in a signature is explained, every `{@link}` resolves, and the
 * internals that the published types leave out (README: `FrameDecoder`, `FrameBatch`, `ReceiveWindow`,
 * `SessionMemory`; exported at run time only for the micro-benchmarks) get no page of their own.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, runProgram } from './support/run-program.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const TYPEDOC = join(ROOT, 'node_modules', 'typedoc', 'bin', 'typedoc');
const OUT = mkdtempSync(join(tmpdir(), 'muxwire-api-'));
const DEADLINE_MS = 180_000;

after(() => rmSync(OUT, { recursive: true, force: true }));

test('the API reference renders without a warning and leaves the internals out', { timeout: DEADLINE_MS }, async () => {
  // typedoc.json turns warnings into errors: a type shown but never explained, a link to nothing, a broken
  // relative link in README.md (the reference's front page) each fail the run.
  const result = await runProgram([TYPEDOC, '--out', OUT], { timeoutMs: DEADLINE_MS - 10_000, cwd: ROOT });
  assert.equal(result.code, 0, describe(result));
  assert.doesNotMatch(result.stdout + result.stderr, /\[warning\]/, describe(result));
  const pages = readdirSync(join(OUT, 'classes')).concat(readdirSync(join(OUT, 'interfaces')));
  for (const internal of [
    'FrameDecoder',
    'FrameSink',
    'FrameBatch',
    'SchedulerHooks',
    'ReceiveWindow',
    'SessionMemory',
  ]) {
    assert.equal(
      pages.some((page) => page.endsWith(`.${internal}.html`)),
      false,
      `${internal} is internal (README), yet has a page`,
    );
  }
  // What users meet in signatures has a page: a write's callback, the emitters' listeners.
  assert.ok(existsSync(join(OUT, 'types', 'index.WriteCallback.html')), 'WriteCallback has no page');
  assert.ok(pages.includes('index.Session.html') && pages.includes('web.WebChannel.html'), pages.join(' '));
});
