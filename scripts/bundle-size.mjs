// What a page pays for muxwire/web, input by input: bundles an import (by default `connectWebSocket`) from
// the built entry (dist/src/web, so run `tsc -p tsconfig.json` first) as esbuild `--bundle --minify` does,
// prints the minified and gzipped size (the figures of docs/browser.md's "Bundle size" table) and, with
// `--inputs`, the minified bytes each source file adds, largest first:
//   node scripts/bundle-size.mjs [--inputs] [--out FILE] ["export { connectWebSocket, logger } from './index.js';"]
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';

const args = process.argv.slice(2);
const showInputs = args.includes('--inputs');
const outAt = args.indexOf('--out');
const out = outAt >= 0 ? args[outAt + 1] : undefined;
const code =
  args.find((arg, i) => !arg.startsWith('--') && i !== outAt + 1) ?? "export { connectWebSocket } from './index.js';";

const result = await build({
  stdin: { contents: code, resolveDir: path.resolve('dist/src/web'), loader: 'js' },
  bundle: true,
  minify: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  write: false,
  metafile: true,
  logLevel: 'silent',
});
const bytes = result.outputFiles[0].contents;
console.log(`${bytes.length} bytes minified, ${gzipSync(bytes, { level: 9 }).length} gzipped`);
if (out !== undefined) writeFileSync(out, bytes);
if (showInputs) {
  const inputs = Object.values(result.metafile.outputs)[0].inputs;
  const rows = Object.entries(inputs).sort((a, b) => b[1].bytesInOutput - a[1].bytesInOutput);
  for (const [input, { bytesInOutput }] of rows) console.log(`${String(bytesInOutput).padStart(7)}  ${input}`);
}
