/**
 * Runs the mocha suites of this folder against `muxwire/libp2p` as built in dist/: libp2p's own stream-muxer
 * compliance suite (`stream-muxer.spec.mjs`) and real libp2p nodes over TCP (`nodes.spec.mjs`). They need
 * this folder's own install (libp2p, its compliance suite and mocha: about 530 MB, kept out of muxwire's
 * devDependencies); without it they are skipped with a note, except on CI, where `.ci/run` installs it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** This folder in the sources (the test runs from dist/test/libp2p-compliance/). */
const FOLDER = fileURLToPath(new URL('../../../test/libp2p-compliance/', import.meta.url));
const MOCHA = join(FOLDER, 'node_modules', 'mocha', 'bin', 'mocha.js');
const INSTALL_HINT = 'cd test/libp2p-compliance && npm ci --ignore-scripts';
/** A whole suite's run; a process still alive then (a leaked handle) fails the test. */
const RUN_LIMIT_MS = 480_000;

interface MochaReport {
  stats: { tests: number; passes: number; failures: number; pending: number };
  failures: { fullTitle: string; err: { message?: string; stack?: string } }[];
  pending: { fullTitle: string }[];
}

/** Runs one mocha spec file of this folder and returns mocha's JSON report. */
async function runMocha(spec: string): Promise<MochaReport> {
  const scratch = mkdtempSync(join(tmpdir(), 'muxwire-libp2p-'));
  const output = join(scratch, 'report.json');
  try {
    const child = spawn(
      process.execPath,
      [MOCHA, '--timeout', '120000', '--reporter', 'json', '--reporter-option', `output=${output}`, spec],
      { cwd: FOLDER, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let log = '';
    const keep = (chunk: Buffer): void => {
      log = (log + chunk.toString()).slice(-20_000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const timer = setTimeout(() => child.kill('SIGKILL'), RUN_LIMIT_MS);
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => {
      child.on('exit', (exitCode, exitSignal) => resolve([exitCode, exitSignal]));
    });
    clearTimeout(timer);
    assert.equal(signal, null, `mocha ${spec} did not exit within ${RUN_LIMIT_MS} ms (killed); its output:\n${log}`);
    assert.ok(existsSync(output), `mocha ${spec} wrote no report (exit code ${code}); its output:\n${log}`);
    const report = JSON.parse(readFileSync(output, 'utf8')) as MochaReport;
    const failures = report.failures.map((f) => `- ${f.fullTitle}: ${f.err.stack ?? f.err.message}`).join('\n');
    assert.equal(report.stats.failures, 0, `failed in ${spec}:\n${failures}\n--- output\n${log}`);
    assert.equal(code, 0, `mocha ${spec} exited with code ${code}; its output:\n${log}`);
    return report;
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

const installed =
  existsSync(MOCHA) &&
  existsSync(join(FOLDER, 'node_modules', '@libp2p', 'interface-compliance-tests', 'package.json'));

if (!installed) {
  if (process.env.CI === 'true') {
    test('libp2p compliance prerequisites', () => {
      assert.fail(`libp2p's test packages are not installed on CI: ${INSTALL_HINT} is needed`);
    });
  } else {
    test('libp2p compliance and libp2p nodes', { skip: `${INSTALL_HINT} is needed` }, () => {});
  }
} else {
  test("libp2p's stream-muxer compliance suite passes 46 of 46 tests against muxwire/libp2p, none skipped", async () => {
    const report = await runMocha('stream-muxer.spec.mjs');
    assert.deepEqual(
      report.pending.map((p) => p.fullTitle),
      [],
      'no test may be skipped',
    );
    assert.equal(report.stats.tests, 46);
    assert.equal(report.stats.passes, 46);
  });

  test("real libp2p nodes over TCP: muxwire with muxwire, and with libp2p's yamux in both roles (echo, ping, 1,000 streams, 64 MiB, a node stopping)", async () => {
    const report = await runMocha('nodes.spec.mjs');
    assert.deepEqual(
      report.pending.map((p) => p.fullTitle),
      [],
      'no test may be skipped',
    );
    // 3 pairings x (echo and ping, 1,000 streams, 64 MiB, either node stopping).
    assert.equal(report.stats.tests, 15);
    assert.equal(report.stats.passes, 15);
  });
}
