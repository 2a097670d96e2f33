// Installs the locked dependencies (npm ci) when node_modules does not hold what package-lock.json names, so
// that `npm start` and `npm test` work on a fresh clone with no separate install step. It compares contents,
// not times: npm's record of what it installed (node_modules/.package-lock.json) against the lockfile, package
// by package. A checkout that only touched package-lock.json (a branch switch, an archive extracted) installs
// nothing again; a dependency added, removed from node_modules or changed in version does.
import { execSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** The lockfile's packages that node_modules lacks or holds in another version (names, at most `limit`). */
export function missingPackages(lockText, installedText, limit = 5) {
  const wanted = JSON.parse(lockText).packages ?? {};
  const installed = installedText === undefined ? {} : (JSON.parse(installedText).packages ?? {});
  const missing = [];
  for (const [path, entry] of Object.entries(wanted)) {
    if (path === '' || entry.link) continue;
    const have = installed[path];
    // optional packages for other platforms (esbuild's, for one) are in the lockfile but never installed
    if (have === undefined ? !entry.optional : have.version !== entry.version) missing.push(path);
    if (missing.length >= limit) break;
  }
  return missing;
}

function read(path) {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const lock = read(join(root, 'package-lock.json'));
  const installed = read(join(root, 'node_modules', '.package-lock.json'));
  const missing = lock === undefined ? [] : missingPackages(lock, installed);
  if (installed === undefined || missing.length > 0) {
    const why = installed === undefined ? 'no node_modules' : `not installed: ${missing.join(', ')}`;
    console.log(`muxwire: installing locked dependencies (npm ci; ${why}) ...`);
    execSync('npm ci --no-audit --no-fund', { cwd: root, stdio: 'inherit' });
  }
}
