/**
 * Every program in examples/ runs in its own process, as a user would run it, and must exit by itself with
 * code 0 and print what it promises; the echo server must survive clients that reset channels, drop their
 * connection or send garbage, and still shut down gracefully on SIGTERM.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { text } from 'node:stream/consumers';
import { multiplexedClient } from '../src/index.js';
import { selfSignedCertificate } from './support/self-signed.js';
import { describe, runProgram, startProgram } from './support/run-program.js';

const EXAMPLES = fileURLToPath(new URL('../examples/', import.meta.url));
/** Generous: the machine running the suite may be busy; a hang is still caught. */
const DEADLINE_MS = 60_000;

/** How to run each example that runs alone, and what its output must show. */
const standalone: Record<string, { args?: () => string[]; node?: string[]; expect: RegExp[] }> = {
  'child-process': { expect: [/^ALPHA BETA GAMMA$/m, /^child exited with code 0$/m] },
  'graceful-shutdown': {
    expect: [
      /refused \(GoAwayError\)/,
      /the download in flight: "part 1 part 2 part 3"/,
      /server session: closed, client session: closed/,
      /ended after the timeout: ERR_MUX_CLOSE_TIMEOUT/,
    ],
  },
  'hello-10k': { node: ['--expose-gc'], args: () => ['300'], expect: [/channels left open after closing:\s+0$/m] },
  http: {
    expect: [
      /^GET \/ served on channel 1$/m,
      /^GET \/a served on channel 1$/m,
      /^GET \/b served on channel 1$/m,
      /^GET \/p4 served on channel \d+$/m,
    ],
  },
  observability: {
    expect: [
      /^answers: one, two, failed: ChannelRefusedError$/m,
      /^client: \d+ bytes in \d+ frames out, \d+ bytes in \d+ frames in; 4 channels dialled, 1 refused, 1 reset$/m,
      /^server: 3 channels opened by the client, 1 refused, 1 reset by the client$/m,
      /^\[log\] server warn channel-refused channel=5: refused the peer's channel: the accept queue is full/m,
      /^channel 7 closed \(reset\): 10 bytes out, \d+ in, ChannelResetError$/m,
      /^sessions announced on muxwire:session: 2$/m,
    ],
  },
  'server-push': { expect: [/^news 1: .*\nnews 2: /m, /^news channel closed at both ends$/m] },
  tls: { args: tlsFiles, expect: [/^hello over TLS \(TLSv1\.[23]\)$/m] },
};
/** Examples run in pairs by their own tests below. */
const paired = new Set(['echo-server', 'echo-client']);

let tlsDir: string | undefined;
function tlsFiles(): string[] {
  tlsDir ??= mkdtempSync(join(tmpdir(), 'muxwire-tls-'));
  const { key, cert } = selfSignedCertificate();
  writeFileSync(join(tlsDir, 'key.pem'), key);
  writeFileSync(join(tlsDir, 'cert.pem'), cert);
  return [join(tlsDir, 'key.pem'), join(tlsDir, 'cert.pem')];
}

const programs = readdirSync(EXAMPLES)
  .filter((f) => f.endsWith('.js'))
  .map((f) => f.slice(0, -3))
  .sort();

test('every example is run by this suite', () => {
  const unknown = programs.filter((name) => !(name in standalone) && !paired.has(name));
  assert.deepEqual(unknown, [], 'add the new example to test/examples.test.ts');
  for (const name of [...Object.keys(standalone), ...paired]) assert.ok(programs.includes(name), `${name} is built`);
});

test("npm start's build (tsconfig.examples.json) compiles the library and every example, and no test", () => {
  const root = fileURLToPath(new URL('../../', import.meta.url));
  const listed = execFileSync(
    process.execPath,
    [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.examples.json', '--listFilesOnly'],
    { cwd: root, encoding: 'utf8', timeout: DEADLINE_MS },
  );
  const ours = listed
    .split('\n')
    .map((file) => relative(root, file.trim()).split(sep).join('/'))
    .filter((file) => file !== '' && !file.startsWith('..') && !file.startsWith('node_modules/'));
  const examples = readdirSync(join(root, 'examples'), { recursive: true, encoding: 'utf8' })
    .filter((file) => file.endsWith('.ts'))
    .map((file) => `examples/${file.split(sep).join('/')}`);
  assert.ok(examples.length >= programs.length, 'the examples are found');
  for (const file of [...examples, 'src/index.ts', 'src/web/index.ts', 'src/libp2p/index.ts', 'src/cli.ts']) {
    assert.ok(ours.includes(file), `${file} is built by npm start`);
  }
  assert.deepEqual(
    ours.filter((file) => !file.startsWith('src/') && !file.startsWith('examples/')),
    [],
    'npm start builds nothing but the library and its examples',
  );
});

for (const [name, how] of Object.entries(standalone)) {
  test(
    `examples/${name} runs, prints what it promises and exits by itself`,
    { timeout: 2 * DEADLINE_MS },
    async (t) => {
      t.after(() => {
        if (tlsDir !== undefined) rmSync(tlsDir, { recursive: true, force: true });
        tlsDir = undefined;
      });
      const result = await runProgram([...(how.node ?? []), join(EXAMPLES, `${name}.js`), ...(how.args?.() ?? [])], {
        timeoutMs: DEADLINE_MS,
      });
      assert.equal(result.code, 0, describe(result));
      assert.equal(result.stderr, '', describe(result));
      for (const pattern of how.expect) assert.match(result.stdout, pattern, describe(result));
    },
  );
}

/** Starts examples/echo-server on a free port; resolves once it listens. */
async function startEchoServer(): Promise<{ port: number; server: ReturnType<typeof startProgram> }> {
  const server = startProgram([join(EXAMPLES, 'echo-server.js'), '0'], { timeoutMs: DEADLINE_MS });
  const [, port] = await server.line(/listening on 127\.0\.0\.1:(\d+)/);
  return { port: Number(port), server };
}

/** Sends SIGTERM and checks the server shut down gracefully: exit code 0, "closed", nothing on stderr. */
async function stopGracefully(server: ReturnType<typeof startProgram>): Promise<string> {
  server.child.kill('SIGTERM');
  const result = await server.result;
  assert.equal(result.code, 0, describe(result));
  assert.match(result.stdout, /^closed$/m, describe(result));
  assert.equal(result.stderr, '', describe(result));
  return result.stdout;
}

test(
  'examples/echo-client gets its echoes from examples/echo-server, which then shuts down on SIGTERM',
  { timeout: 2 * DEADLINE_MS },
  async () => {
    const { port, server } = await startEchoServer();
    try {
      const client = await runProgram([join(EXAMPLES, 'echo-client.js'), String(port)], { timeoutMs: DEADLINE_MS });
      assert.equal(client.code, 0, describe(client));
      assert.equal(client.stdout, 'hello from channel one\nhello from channel two\nhello from channel three\n');
    } finally {
      await stopGracefully(server);
    }
  },
);

/** Resolves after the socket has connected. */
async function connectTo(port: number): Promise<net.Socket> {
  const socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  return socket;
}

test(
  'clients that reset channels, vanish or send garbage never crash examples/echo-server',
  { timeout: 2 * DEADLINE_MS },
  async () => {
    const { port, server } = await startEchoServer();
    try {
      // 1. Channels reset by the client: before writing, mid-write, and after its data is in flight.
      const socket = await connectTo(port);
      const session = multiplexedClient(socket, { keepAliveInterval: 0 });
      session.dial().destroy();
      const big = session.dial();
      big.on('error', () => {});
      big.write(Buffer.alloc(2 * 1024 * 1024, 1)); // beyond the window: the server is still echoing when reset
      await new Promise((resolve) => setTimeout(resolve, 50));
      big.destroy();
      const half = session.dial();
      half.write('some bytes');
      await new Promise((resolve) => setTimeout(resolve, 20));
      half.destroy();

      // 2. Connections that vanish with channels open: a FIN, and a TCP reset.
      for (const ending of ['destroy', 'reset'] as const) {
        const gone = await connectTo(port);
        const goneSession = multiplexedClient(gone, { keepAliveInterval: 0 });
        for (let i = 0; i < 5; i++) {
          const channel = goneSession.dial();
          channel.on('error', () => {});
          channel.write(Buffer.alloc(100_000, i));
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
        if (ending === 'destroy') gone.destroy();
        else gone.resetAndDestroy();
        goneSession.destroy();
      }

      // 3. Bytes that are not yamux at all.
      const garbage = await connectTo(port);
      garbage.on('error', () => {});
      garbage.resume(); // read the server's Go Away, so that its end (and 'close') arrives
      garbage.end(Buffer.from('GET / HTTP/1.1\r\nHost: example\r\n\r\n'));
      await once(garbage, 'close');

      // The server is still up and still echoes, on the first session and on a new one.
      const again = session.dial();
      again.end('still there?');
      assert.equal(await text(again), 'still there?');
      const fresh = multiplexedClient(await connectTo(port), { keepAliveInterval: 0 });
      const check = fresh.dial();
      check.end('and for newcomers?');
      assert.equal(await text(check), 'and for newcomers?');
      await Promise.all([session.close({ timeout: 5_000 }), fresh.close({ timeout: 5_000 })]);
      assert.equal(server.child.exitCode, null, 'the server is still running');
    } finally {
      const stdout = await stopGracefully(server);
      // The resets were seen, and reported as typed errors on the channels they ended.
      assert.match(stdout, /ended early: ERR_MUX_(CHANNEL_RESET|TRANSPORT_CLOSED)/);
    }
  },
);
