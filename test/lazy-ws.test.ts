/**
 * Importing 'muxwire' leaves the `ws` package unloaded until createWebSocketServer() needs it (issue 16: most
 * of the import's CPU was `ws` being scanned and compiled, paid by programs that never serve WebSockets).
 * Run in a fresh process, since this test runner's own process may have loaded `ws` already.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const INDEX = fileURLToPath(new URL('../src/index.js', import.meta.url));

// Prints whether `ws` is in the CommonJS module cache after the import, then after one server is made.
const SCRIPT = `
import { createRequire } from 'node:module';
const cache = createRequire(import.meta.url).cache;
const wsLoaded = () => Object.keys(cache).some((file) => /[\\\\/]node_modules[\\\\/]ws[\\\\/]/.test(file));
const { createWebSocketServer } = await import(process.argv[1]);
const afterImport = wsLoaded();
const server = createWebSocketServer({ port: 0, host: '127.0.0.1' }, () => {});
await new Promise((resolve, reject) => { server.once('listening', resolve); server.once('error', reject); });
const afterServer = wsLoaded();
await new Promise((resolve) => server.close(() => resolve()));
console.log(JSON.stringify({ afterImport, afterServer }));
`;

test('importing muxwire does not load ws; the first createWebSocketServer() does', () => {
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', SCRIPT, INDEX], {
    encoding: 'utf8',
    timeout: 30_000,
  });
  assert.deepEqual(JSON.parse(out.trim()), { afterImport: false, afterServer: true });
});

test("createWebSocketServer() given ws's browser build (a runner resolving for a browser) says so", () => {
  // Jest's jsdom environment resolves packages with the 'browser' condition; Node's --conditions does the same.
  const script = `
const { createWebSocketServer } = await import(process.argv[1]);
try {
  createWebSocketServer({ port: 0, host: '127.0.0.1' }, () => {});
  console.log('made');
} catch (error) {
  console.log(error.name + ': ' + error.message);
}`;
  const out = execFileSync(process.execPath, ['--conditions=browser', '--input-type=module', '-e', script, INDEX], {
    encoding: 'utf8',
    timeout: 30_000,
  });
  assert.match(out, /^TypeError: muxwire: createWebSocketServer\(\) needs the 'ws' package's Node build/);
  assert.match(out, /customExportConditions/);
});

test('createWebSocketServer() in a CommonJS bundle (no import.meta.url) says so and how to bundle instead', async () => {
  const { build } = await import('esbuild');
  const dir = mkdtempSync(join(tmpdir(), 'muxwire-cjs-'));
  try {
    const entry = join(dir, 'entry.mjs');
    writeFileSync(
      entry,
      `import { createWebSocketServer } from ${JSON.stringify(INDEX)};
try {
  createWebSocketServer({ port: 0, host: '127.0.0.1' }, () => {});
  console.log('made');
} catch (error) {
  console.log(error.name + ': ' + error.message);
}
`,
    );
    const bundle = join(dir, 'bundle.cjs');
    await build({
      entryPoints: [entry],
      bundle: true,
      platform: 'node',
      format: 'cjs',
      outfile: bundle,
      external: ['ws'],
      logLevel: 'silent',
    });
    const out = execFileSync(process.execPath, [bundle], { encoding: 'utf8', timeout: 30_000 });
    // Before: Node's own "TypeError: The argument 'filename' must be a file URL object, ..." from createRequire.
    assert.match(out, /^TypeError: muxwire: createWebSocketServer\(\) loads the 'ws' package .* a CommonJS bundle/);
    assert.match(out, /--format=esm/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
