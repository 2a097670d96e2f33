/**
 * The package as a user gets it: `npm pack`, installed from the tarball into a fresh project (its one runtime
 * dependency, `ws`, from npm's cache where it is there, else from the registry: `npm ci` caches the tarball but not
 * the registry's list of versions that resolving `ws`'s range needs), then type-checked against its published
 * declarations (strict, with the library checks on, every entry point) and run, as ESM and through `require`.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { brokenLinks, markdownFiles } from './support/markdown-links.js';
import { describe, runProgram } from './support/run-program.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
const DEADLINE_MS = 120_000;
/** npm as the running Node has it (npm_execpath when run by `npm test`, else the npm beside node). */
const NPM_CLI =
  process.env.npm_execpath?.endsWith('.js') || process.env.npm_execpath?.endsWith('.cjs')
    ? process.env.npm_execpath
    : join(process.execPath, '..', '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js');

let work = '';
let app = '';
let installed = '';

function npm(args: string[], cwd: string): string {
  return execFileSync(process.execPath, [NPM_CLI, ...args], {
    cwd,
    encoding: 'utf8',
    timeout: DEADLINE_MS,
    env: { ...process.env, npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false' },
  });
}

before(() => {
  work = mkdtempSync(join(tmpdir(), 'muxwire-pack-'));
  // Packed as built by this run: its `prepack` (which builds from a clean dist/src, for a fresh clone's pack)
  // would rebuild dist/ under the test files running beside this one.
  const [packed] = JSON.parse(npm(['pack', '--json', '--ignore-scripts', '--pack-destination', work], ROOT)) as {
    filename: string;
  }[];
  app = join(work, 'app');
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  npm(['install', '--prefer-offline', '--no-audit', '--no-fund', join(work, packed!.filename)], app);
  installed = join(app, 'node_modules', 'muxwire');
});

after(() => {
  if (work !== '') rmSync(work, { recursive: true, force: true });
});

/** A small program as a user would write it: a server and a client over loopback, one echo, both closed. */
const PROGRAM = `
import { pipeline } from 'node:stream';
import { text } from 'node:stream/consumers';
import type { AddressInfo } from 'node:net';
import { connect, createServer, type Channel, ChannelResetError } from 'muxwire';
import { LightSession, MuxError } from 'muxwire/core';

const server = createServer((session) => {
  session.on('channel', (channel: Channel) => pipeline(channel, channel, () => {}));
});
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const session = await connect({ host: '127.0.0.1', port: (server.address() as AddressInfo).port });
const channel = session.dial();
channel.setKeepAlive(true).setNoDelay(true);
channel.end('packed');
console.log(await text(channel), channel.remoteAddress, ChannelResetError.prototype instanceof MuxError,
  typeof LightSession);
await session.close();
server.close();
`;

/**
 * The other entries, for their declarations: each class that implements the core's `ChannelEndpoint` must
 * keep, after `stripInternal`, every member the interface publishes (a `destroyed` marked internal once broke
 * `muxwire/web` and `muxwire/libp2p` for every project that checks libraries).
 */
const ENTRIES = `
import { connectWebSocket, WebChannel, WebSession } from 'muxwire/web';
import { muxwire, type MuxwireInit } from 'muxwire/libp2p';
const init: MuxwireInit = { maxInboundStreams: 10, session: { closeTimeout: 1000 } };
export { connectWebSocket, WebChannel, WebSession, muxwire, init };
`;

/** Lines that must not type-check: internals are not part of the published types. */
const INTERNALS = `
// @ts-expect-error the send queue is internal
import { WriteScheduler } from 'muxwire/core';
// @ts-expect-error the write batch is internal
import { FrameBatch, COPY_LIMIT } from 'muxwire/core';
import type { Channel } from 'muxwire';
declare const channel: Channel;
// @ts-expect-error the session's delivery hook is internal
channel.deliver(new Uint8Array(1));
// @ts-expect-error the session's channel-side methods are internal
channel.session.writeChannel;
// @ts-expect-error the decoder's callbacks are internal
channel.session.onHeader;
// @ts-expect-error what channels ask of the session goes through their port, not the session's API
channel.session.readProgress;
// @ts-expect-error the scheduler's callback is internal
channel.session.onFlagsSent;
export { WriteScheduler, FrameBatch, COPY_LIMIT };
`;

for (const resolution of ['nodenext', 'bundler'] as const) {
  test(
    `the packed package type-checks in a fresh project (moduleResolution ${resolution}, strict, library checks on)`,
    { timeout: DEADLINE_MS },
    () => {
      const dir = join(app, `ts-${resolution}`);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'main.ts'), PROGRAM);
      writeFileSync(join(dir, 'internals.ts'), INTERNALS);
      writeFileSync(join(dir, 'entries.ts'), ENTRIES);
      // muxwire/libp2p's optional peer dependencies, which the offline install left out: linked from this repo.
      for (const name of ['@libp2p/interface', '@libp2p/utils', 'uint8arraylist']) {
        const link = join(app, 'node_modules', name);
        mkdirSync(dirname(link), { recursive: true });
        if (!existsSync(link)) symlinkSync(join(ROOT, 'node_modules', name), link, 'dir');
      }
      writeFileSync(
        join(dir, 'tsconfig.json'),
        JSON.stringify({
          compilerOptions: {
            target: 'ES2022',
            module: resolution === 'nodenext' ? 'NodeNext' : 'ESNext',
            moduleResolution: resolution,
            strict: true,
            skipLibCheck: false, // check the package's own .d.ts files too
            noEmit: true,
            types: ['node'],
            typeRoots: [join(ROOT, 'node_modules', '@types')],
          },
          files: ['main.ts', 'internals.ts', 'entries.ts'],
        }),
      );
      try {
        execFileSync(process.execPath, [TSC, '-p', dir], { encoding: 'utf8', timeout: DEADLINE_MS });
      } catch (error) {
        assert.fail(`tsc failed:\n${(error as { stdout?: string }).stdout}`);
      }
    },
  );
}

test(
  'the packed package runs as ESM: a server and a client echo over it and exit',
  { timeout: DEADLINE_MS },
  async () => {
    // The same program with its types stripped by TypeScript, run by Node from the fresh project.
    const js = execFileSync(
      process.execPath,
      [
        '-e',
        `
    const ts = require(${JSON.stringify(join(ROOT, 'node_modules', 'typescript'))});
    process.stdout.write(ts.transpileModule(process.argv[1], { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText);
  `,
        PROGRAM,
      ],
      { encoding: 'utf8' },
    );
    writeFileSync(join(app, 'main.mjs'), js);
    const result = await runProgram([join(app, 'main.mjs')], { timeoutMs: DEADLINE_MS, cwd: app });
    assert.equal(result.code, 0, describe(result));
    assert.equal(result.stdout, 'packed 127.0.0.1 true function\n', describe(result));
  },
);

const [major, minor] = process.versions.node.split('.').map(Number) as [number, number];
const requireEsm = major > 22 || (major === 22 && minor >= 12) || (major === 20 && minor >= 19);
test(
  'the packed package loads with require() where Node supports require(esm) (20.19+, 22.12+)',
  {
    skip: requireEsm ? false : `Node ${process.versions.node} has no require(esm) without a flag`,
    timeout: DEADLINE_MS,
  },
  async () => {
    writeFileSync(
      join(app, 'main.cjs'),
      `
    const { multiplexedClient, multiplexedServer, MuxError } = require('muxwire');
    const { LightSession } = require('muxwire/core');
    console.log(typeof multiplexedClient, typeof multiplexedServer, typeof MuxError, typeof LightSession);
  `,
    );
    const result = await runProgram([join(app, 'main.cjs')], { timeoutMs: DEADLINE_MS, cwd: app });
    assert.equal(result.code, 0, describe(result));
    assert.equal(result.stdout, 'function function function function\n', describe(result));
  },
);

test('the packed package holds its license, changelog, docs and examples, and source maps that carry their sources', () => {
  // (README.md links to CONTRIBUTING.md and shows docs/demo.png.)
  for (const file of [
    'LICENSE',
    'README.md',
    'CHANGELOG.md',
    'CONTRIBUTING.md',
    'docs/design.md',
    'docs/demo.png',
    'examples/echo-server.ts',
  ]) {
    assert.ok(existsSync(join(installed, file)), `${file} is in the package`);
  }
  const pkg = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8')) as {
    sideEffects?: unknown;
    version: string;
    scripts: Record<string, string>;
  };
  assert.equal(pkg.sideEffects, false);
  // Tools read a package's version through its exports.
  assert.equal(
    (createRequire(join(app, 'index.js'))('muxwire/package.json') as { version: string }).version,
    pkg.version,
  );
  // `npm pack` or `npm publish` from a fresh clone (no dist/ yet) builds first, and never ships a deleted source.
  assert.match(pkg.scripts.prepack ?? '', /rm -rf dist\/src && npm run build/);
  const maps = readdirSync(join(installed, 'dist', 'src'), { recursive: true, encoding: 'utf8' }).filter((f) =>
    f.endsWith('.js.map'),
  );
  assert.ok(maps.length > 10);
  for (const file of maps) {
    const map = JSON.parse(readFileSync(join(installed, 'dist', 'src', file), 'utf8')) as {
      sources: string[];
      sourcesContent?: (string | null)[];
    };
    assert.equal(map.sourcesContent?.length, map.sources.length, `${file} carries its sources`);
    for (const content of map.sourcesContent) assert.ok(typeof content === 'string' && content.length > 0, file);
  }
  // What the README and docs link to is in the package too (an installed copy read in an editor).
  assert.deepEqual(brokenLinks(installed, markdownFiles(installed)), []);
  // Tests, benchmarks and the examples' build output stay out of the package.
  assert.equal(existsSync(join(installed, 'dist', 'test')), false);
  assert.equal(existsSync(join(installed, 'dist', 'bench')), false);
});
