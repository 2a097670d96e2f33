// Installs the locked dependencies (npm ci) when node_modules does not hold what package-lock.json names, so
// that `npm start` and `npm test` work on a fresh clone with no separate install step. It compares contents,
// not times: npm's record of what it installed (node_modules/.package-lock.json) against the lockfile, package
// by package (version, and where it came from), and looks for each package's folder. A checkout that only
// touched package-lock.json (a branch switch, an archive extracted) installs nothing again; a package added,
// removed, changed or deleted from node_modules by hand, or a damaged record, does.
import { execSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Whether a lockfile's `os` or `cpu` list admits `value` (entries may be negated: `!win32`). */
function admits(list, value) {
  if (!Array.isArray(list)) return true;
  if (list.includes(`!${value}`)) return false;
  return list.includes(value) || list.every((entry) => entry.startsWith('!'));
}

/**
 * What node_modules lacks against the lockfile (at most `limit` paths): packages missing, in another version or
 * from another source, their folder gone (`exists`), or installed though the lockfile no longer names them.
 * `installedText` undefined or not JSON: everything (a record npm never finished or that was damaged).
 */
export function missingPackages(lockText, installedText, limit = 5, exists = () => true, platform = process) {
  const wanted = JSON.parse(lockText).packages ?? {};
  let installed;
  try {
    installed = installedText === undefined ? undefined : (JSON.parse(installedText).packages ?? {});
  } catch {
    installed = undefined;
  }
  if (installed === undefined)
    return Object.keys(wanted)
      .filter((path) => path !== '')
      .slice(0, limit);
  const missing = [];
  for (const [path, entry] of Object.entries(wanted)) {
    if (path === '' || missing.length >= limit) continue;
    const have = installed[path];
    if (have === undefined) {
      // optional packages for other platforms (esbuild's, for one) are in the lockfile but never installed
      const forHere = admits(entry.os, platform.platform) && admits(entry.cpu, platform.arch);
      if (!entry.optional || forHere) missing.push(path);
    } else if (
      have.version !== entry.version ||
      (entry.resolved !== undefined && have.resolved !== entry.resolved) ||
      Boolean(have.link) !== Boolean(entry.link) ||
      !exists(path)
    ) {
      missing.push(path);
    }
  }
  for (const path of Object.keys(installed)) {
    if (missing.length >= limit) break;
    if (!(path in wanted)) missing.push(`${path} (no longer locked)`);
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
  const missing = lock === undefined ? [] : missingPackages(lock, installed, 5, (path) => existsSync(join(root, path)));
  if (installed === undefined || missing.length > 0) {
    const why = installed === undefined ? 'no node_modules' : `not installed: ${missing.join(', ')}`;
    console.log(`muxwire: installing locked dependencies (npm ci; ${why}) ...`);
    execSync('npm ci --no-audit --no-fund', { cwd: root, stdio: 'inherit' });
  }
}
