/**
 * Every TypeScript block in README.md is a complete program: this suite type-checks them all against the
 * package as users import it (`'muxwire'`, resolved by the package's own name to the build), runs each in
 * its own process, and requires it to exit by itself with code 0, nothing on stderr, and every line that a
 * `console.log(...); // expected` comment promises.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { brokenLinks, markdownFiles } from './support/markdown-links.js';
import { describe, runProgram } from './support/run-program.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** Inside the package (under dist/), so that `import 'muxwire'` resolves to this build. */
const DIR = join(ROOT, 'dist', 'readme');
const DEADLINE_MS = 60_000;

const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
const blocks = [...readme.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((m, i) => ({
  name: `block-${i + 1}`,
  code: m[1]!,
  line: readme.slice(0, m.index).split('\n').length + 1,
}));

before(() => {
  rmSync(DIR, { recursive: true, force: true });
  mkdirSync(DIR, { recursive: true });
  for (const block of blocks) writeFileSync(join(DIR, `${block.name}.ts`), block.code);
  writeFileSync(
    join(DIR, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'ES2022',
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        strict: true,
        skipLibCheck: true,
        types: ['node'],
        rootDir: '.',
        outDir: 'out',
      },
      include: ['*.ts'],
    }),
  );
});

test('the README has its programs as ts blocks, each importing muxwire', () => {
  assert.ok(blocks.length >= 3, `found ${blocks.length} blocks`);
  for (const block of blocks) assert.match(block.code, /from 'muxwire'/, `README line ${block.line}`);
});

test('every README program type-checks against the package', { timeout: 2 * DEADLINE_MS }, () => {
  try {
    execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', DIR], {
      encoding: 'utf8',
      timeout: 2 * DEADLINE_MS,
    });
  } catch (error) {
    assert.fail(`tsc failed on the README's programs (${DIR}):\n${(error as { stdout?: string }).stdout}`);
  }
});

for (const block of blocks) {
  test(
    `the README program at line ${block.line} runs, prints what it says and exits by itself`,
    { timeout: 2 * DEADLINE_MS },
    async () => {
      const result = await runProgram([join(DIR, 'out', `${block.name}.js`)], { timeoutMs: DEADLINE_MS });
      assert.equal(result.code, 0, describe(result));
      assert.equal(result.stderr, '', describe(result));
      const promised = [...block.code.matchAll(/console\.log\(.*\); \/\/ (.+)$/gm)].map((m) => m[1]!);
      for (const line of promised)
        assert.ok(result.stdout.split('\n').includes(line), `prints "${line}"\n${describe(result)}`);
    },
  );
}

test("every relative link in the repository's Markdown leads to a file, and a heading, that exist", () => {
  const files = markdownFiles(ROOT);
  assert.ok(files.length > 10, 'the Markdown files are found');
  assert.deepEqual(brokenLinks(ROOT, files), []);
});

test("docs/design.md's table of the core's files gives each file's length within a tenth of what it is", () => {
  const design = readFileSync(join(ROOT, 'docs', 'design.md'), 'utf8');
  const rows = [...design.matchAll(/^\| `([\w-]+\.ts)` \|.*\| ~(\d+) \|$/gm)];
  assert.ok(rows.length >= 10, 'the rows with a length are found');
  const off = rows
    .map(([, file, said]) => ({ file: file!, said: Number(said), lines: lineCount(join('src', 'core', file!)) }))
    .filter(({ said, lines }) => Math.abs(lines - said) > lines / 10);
  assert.deepEqual(off, [], 'update the lengths in docs/design.md');
});

function lineCount(file: string): number {
  return readFileSync(join(ROOT, file), 'utf8').trimEnd().split('\n').length;
}
