/**
 * scripts/ensure-deps.mjs, which `npm start`, `npm test` and the build run first: it installs (npm ci) only
 * when node_modules does not hold what package-lock.json names, judged by contents, not by file times.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
type MissingPackages = (
  lockText: string,
  installedText: string | undefined,
  limit?: number,
  exists?: (path: string) => boolean,
  platform?: { platform: string; arch: string },
) => string[];
const { missingPackages } = (await import(pathToFileURL(join(ROOT, 'scripts', 'ensure-deps.mjs')).href)) as {
  missingPackages: MissingPackages;
};

const lock = (packages: Record<string, object>): string => JSON.stringify({ lockfileVersion: 3, packages });

test('ensure-deps: nothing to install when every locked package is installed in its version', () => {
  const wanted = lock({
    '': { name: 'app' },
    'node_modules/a': { version: '1.0.0' },
    'node_modules/b/node_modules/a': { version: '2.0.0' },
    'node_modules/@esbuild/win32-x64': { version: '0.25.0', optional: true, os: ['win32'] },
  });
  const installed = lock({
    'node_modules/a': { version: '1.0.0' },
    'node_modules/b/node_modules/a': { version: '2.0.0' },
  });
  assert.deepEqual(missingPackages(wanted, installed), []);
});

test('ensure-deps: a package missing, in another version, or no node_modules at all means installing', () => {
  const wanted = lock({ '': {}, 'node_modules/a': { version: '1.0.0' }, 'node_modules/b': { version: '3.1.0' } });
  assert.deepEqual(missingPackages(wanted, lock({ 'node_modules/a': { version: '1.0.0' } })), ['node_modules/b']);
  assert.deepEqual(
    missingPackages(wanted, lock({ 'node_modules/a': { version: '1.0.1' }, 'node_modules/b': { version: '3.1.0' } })),
    ['node_modules/a'],
  );
  assert.deepEqual(missingPackages(wanted, undefined), ['node_modules/a', 'node_modules/b']);
});

test('ensure-deps: a package from another source, its folder deleted, no longer locked, or a damaged record means installing', () => {
  const wanted = lock({ '': {}, 'node_modules/a': { version: '1.0.0', resolved: 'https://r/a-1.0.0.tgz' } });
  const same = lock({ 'node_modules/a': { version: '1.0.0', resolved: 'https://r/a-1.0.0.tgz' } });
  assert.deepEqual(missingPackages(wanted, same), []);
  const moved = lock({ 'node_modules/a': { version: '1.0.0', resolved: 'git+ssh://host/a.git#abc' } });
  assert.deepEqual(missingPackages(wanted, moved), ['node_modules/a']);
  assert.deepEqual(
    missingPackages(wanted, same, 5, (path) => path !== 'node_modules/a'),
    ['node_modules/a'],
  );
  const extra = lock({
    'node_modules/a': { version: '1.0.0', resolved: 'https://r/a-1.0.0.tgz' },
    'node_modules/old': { version: '2.0.0' },
  });
  assert.deepEqual(missingPackages(wanted, extra), ['node_modules/old (no longer locked)']);
  assert.deepEqual(missingPackages(wanted, '{"packages": {"node_m'), ['node_modules/a']);
});

test("ensure-deps: an optional package for this platform that is missing means installing; another platform's does not", () => {
  const wanted = lock({
    '': {},
    'node_modules/@esbuild/linux-x64': { version: '0.25.0', optional: true, os: ['linux'], cpu: ['x64'] },
    'node_modules/@esbuild/win32-x64': { version: '0.25.0', optional: true, os: ['win32'], cpu: ['x64'] },
    'node_modules/fsevents': { version: '2.3.3', optional: true, os: ['!linux', '!win32'] },
  });
  const linux = { platform: 'linux', arch: 'x64' };
  assert.deepEqual(
    missingPackages(wanted, lock({}), 5, () => true, linux),
    ['node_modules/@esbuild/linux-x64'],
  );
  assert.deepEqual(
    missingPackages(wanted, lock({}), 5, () => true, { platform: 'darwin', arch: 'arm64' }),
    ['node_modules/fsevents'],
  );
});

test("ensure-deps: this checkout's node_modules holds its lockfile's packages (the test suite runs on them)", () => {
  const installed = readFileSync(join(ROOT, 'node_modules', '.package-lock.json'), 'utf8');
  const here = (path: string): boolean => existsSync(join(ROOT, path));
  assert.deepEqual(missingPackages(readFileSync(join(ROOT, 'package-lock.json'), 'utf8'), installed, 5, here), []);
});
