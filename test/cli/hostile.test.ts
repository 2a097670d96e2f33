/**
 * What a hostile peer can do to each end of the tunnel, as separate processes on 127.0.0.1: an HTTP request a
 * `--ws` server cannot parse as a URL, a client that opens forwarded connections until the server runs out of
 * file descriptors, peers' strings written into the human log, and the one line the server logs for each
 * connection it closes before the tunnel's handshake.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { WebSocket } from 'ws';
import { type Channel, Session } from '../../src/index.js';
import { type AnnouncedForward, encode, expectMessage, readMessage } from '../../src/cli/protocol.js';
import { selfSignedCertificate } from '../support/self-signed.js';
import { CLI, Cli, localPorts, startClient, startServer, workDir } from './harness.js';
import { until, within } from '../helpers.js';

const TIMEOUT = 60_000;

/** This process's limit on open files (after Node raised its soft limit to the hard one); Infinity unknown. */
function openFileLimit(): number {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    const limit = Number(line?.split(/\s+/)[3]);
    return Number.isFinite(limit) ? limit : Infinity;
  } catch {
    return Infinity;
  }
}

/** A TCP server on 127.0.0.1 that echoes each connection and keeps it open until the other side ends it. */
async function echoTarget(): Promise<{ port: number; sockets: Set<net.Socket>; close(): void }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
    socket.pipe(socket);
  });
  server.maxConnections = 10_000;
  await new Promise<void>((resolve) => server.listen({ port: 0, host: '127.0.0.1', backlog: 2048 }, resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    sockets,
    close() {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  };
}

/** The command without `--json`: its human log on stderr, as a person sees it. */
class PlainCli {
  readonly child: ChildProcess;
  stderr = '';
  constructor(args: string[]) {
    this.child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (this.stderr += chunk));
  }
  async waitFor(pattern: RegExp, timeoutMs = 10_000): Promise<RegExpMatchArray> {
    await until(() => pattern.test(this.stderr), timeoutMs, `${String(pattern)} in:\n${this.stderr}`);
    return pattern.exec(this.stderr)!;
  }
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGKILL');
    await once(this.child, 'exit');
  }
}

/** Sends `request` on a new connection (TLS when `secure`) and resolves to the status line of the answer. */
async function statusLine(port: number, request: string, secure: boolean): Promise<string> {
  const socket = secure
    ? tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false })
    : net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  await once(socket, secure ? 'secureConnect' : 'connect');
  let received = '';
  socket.setEncoding('utf8').on('data', (chunk: string) => (received += chunk));
  socket.write(request);
  try {
    await until(() => received.includes('\r\n'), 5000, `an answer to ${JSON.stringify(request)}`);
  } finally {
    socket.destroy();
  }
  return received.split('\r\n')[0]!;
}

describe('hostile peers', { timeout: TIMEOUT * 8 }, () => {
  const work = workDir();
  const material = selfSignedCertificate('localhost');
  let certFile = '';
  let keyFile = '';
  const processes: { stop(signal?: NodeJS.Signals): Promise<unknown> }[] = [];

  before(() => {
    certFile = work.write('cert.pem', material.cert);
    keyFile = work.write('key.pem', material.key, 0o600);
  });
  after(async () => {
    await Promise.all(processes.map((p) => p.stop('SIGKILL')));
    work.remove();
  });

  async function server(args: string[]): Promise<{ cli: Cli; port: number }> {
    const started = await startServer(['--token-file', work.tokenFile, ...args]);
    processes.push(started.cli);
    return started;
  }

  /** A client of the test's own over TCP that authenticates and announces `forwards`. */
  async function authenticated(port: number, forwards: AnnouncedForward[]): Promise<Session> {
    const socket = net.connect(port, '127.0.0.1');
    await once(socket, 'connect');
    const session = new Session(socket, 'client', { keepAliveInterval: 0 });
    const control = session.dial();
    control.on('error', () => {});
    control.write(encode({ type: 'hello', version: 1, token: work.token, forwards }));
    await expectMessage(control, 5000, 'welcome');
    return session;
  }

  /** Asks for `host:port` on a new channel of `session`: resolves to 'ok', or to why it failed. */
  async function forward(session: Session, host: string, port: number): Promise<{ result: string; channel?: Channel }> {
    let channel: Channel;
    try {
      channel = session.dial();
    } catch (error) {
      return { result: `no channel: ${(error as Error).message}` };
    }
    channel.on('error', () => {});
    channel.write(encode({ type: 'connect', host, port }));
    try {
      await expectMessage(channel, 10_000, 'ok');
      return { result: 'ok', channel };
    } catch (error) {
      return { result: (error as { code?: string }).code ?? (error as Error).message, channel };
    }
  }

  test(
    'a connection that opens a channel besides its control channel before the welcome is dropped at once, with or without its hello, and says why (no token needed to try)',
    { timeout: TIMEOUT },
    async () => {
      const s = await server([]);
      for (const sayHello of [false, true]) {
        const socket = net.connect(s.port, '127.0.0.1');
        socket.on('error', () => {});
        await once(socket, 'connect');
        socket.pause(); // reads nothing: the resets it would be owed could only pile up
        const session = new Session(socket, 'client', { keepAliveInterval: 0 });
        const control = session.dial();
        control.on('error', () => {});
        if (sayHello) control.write(encode({ type: 'hello', version: 1, token: 'not the token at all', forwards: [] }));
        const extra = Array.from({ length: 100 }, () => session.dial());
        for (const channel of extra) channel.on('error', () => {});
        const started = performance.now();
        // (Not events.once: the reset the server's end may bring is an 'error', which it would reject with.)
        await within(
          new Promise((resolve) => socket.once('close', resolve)),
          5000,
          'the server to drop the connection',
        );
        assert.ok(performance.now() - started < 3000, 'well before the 10 s hello deadline and the 1 s auth delay');
        session.destroy();
      }
      const failed = () => s.cli.events.filter((e) => e.event === 'handshake-failed');
      await until(() => failed().length >= 2, 5000, `two handshake failures logged: ${s.cli.describe()}`);
      const dropped = failed();
      assert.equal(dropped.length, 2, s.cli.describe());
      for (const event of dropped) {
        assert.equal(event.code, 'ERR_TUNNEL_PROTOCOL');
        assert.match(event.message, /opened channel \d+ before the welcome/);
      }
      assert.equal(
        s.cli.events.filter((e) => e.event === 'auth-failed').length,
        0,
        'dropped before the token was judged',
      );
      await s.cli.stop();
    },
  );

  test(
    "clients with a wrong token that fill their control channel's window in one-byte frames while the refusal waits hold little of the server's memory",
    { timeout: TIMEOUT },
    async () => {
      const s = await server([]);
      const rss = (): number => {
        const status = readFileSync(`/proc/${s.cli.child.pid}/status`, 'utf8');
        return Number(/VmRSS:\s+(\d+)/.exec(status)![1]) * 1024;
      };
      const before = rss();
      let peak = before;
      const watch = setInterval(() => (peak = Math.max(peak, rss())), 20);
      const attackers = 8;
      const hello = encode({ type: 'hello', version: 1, token: 'not the token at all', forwards: [] });
      // SYN and the hello on channel 1, then the rest of its 256 KiB window a byte a frame (a Data frame's header:
      // version 0, type 0, flags, id 1, length).
      const header = (flags: number, length: number): Buffer =>
        Buffer.from([
          0,
          0,
          0,
          flags,
          0,
          0,
          0,
          1,
          length >>> 24,
          (length >>> 16) & 255,
          (length >>> 8) & 255,
          length & 255,
        ]);
      const one = Buffer.concat([header(0, 1), Buffer.from('a')]);
      const flood = Buffer.concat(Array.from({ length: 256 * 1024 - hello.length }, () => one));
      try {
        await Promise.all(
          Array.from({ length: attackers }, async () => {
            const socket = net.connect(s.port, '127.0.0.1');
            socket.on('error', () => {});
            socket.resume(); // (its pings go unanswered: the refusal comes well before keep-alive would matter)
            await once(socket, 'connect');
            socket.write(Buffer.concat([header(1, hello.length), hello]));
            socket.write(flood);
            await within(
              new Promise((resolve) => socket.once('close', resolve)),
              20_000,
              'the server to refuse and close',
            );
          }),
        );
        await until(
          () => s.cli.events.filter((e) => e.event === 'auth-failed').length === attackers,
          5000,
          `every wrong token refused: ${s.cli.describe()}`,
        );
      } finally {
        clearInterval(watch);
      }
      // Before: about 50 MB of the server's heap each (a chunk held for every byte), 400 MB for eight.
      assert.ok(peak - before < 120 * 1024 * 1024, `the server grew by ${((peak - before) / 1048576).toFixed(0)} MiB`);
      await s.cli.stop();
    },
  );

  for (const secure of [false, true]) {
    test(
      `a ${secure ? 'wss' : 'ws'} server answers a request whose target is no URL (GET http://a:99999/) with 404, and an upgrade to it with 400, and goes on`,
      { timeout: TIMEOUT },
      async () => {
        const s = await server(['--ws', '/t', ...(secure ? ['--tls-cert', certFile, '--tls-key', keyFile] : [])]);
        assert.equal(
          await statusLine(s.port, 'GET http://a:99999/ HTTP/1.1\r\nHost: x\r\n\r\n', secure),
          'HTTP/1.1 404 Not Found',
        );
        const upgrade =
          'GET http://a:99999/t HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
          'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n';
        assert.equal(await statusLine(s.port, upgrade, secure), 'HTTP/1.1 400 Bad Request');
        assert.equal(
          await statusLine(s.port, 'GET /t?x=1 HTTP/1.1\r\nHost: x\r\n\r\n', secure),
          'HTTP/1.1 426 Upgrade Required',
        );
        assert.equal(s.cli.child.exitCode, null, `the server is still running: ${s.cli.describe()}`);
        assert.equal(await s.cli.stop(), 0);
      },
    );
  }

  test(
    'one client holds at most 4,096 forwarded connections by default: more are refused and logged, and another client still gets through',
    {
      timeout: TIMEOUT,
      // The test's process holds every target connection, as the server does.
      skip: openFileLimit() < 10_000 ? `needs a limit of 10,000 open files, has ${openFileLimit()}` : false,
    },
    async () => {
      const target = await echoTarget();
      try {
        const s = await server(['--allow', `127.0.0.1:${target.port}`]);
        const greedy = await authenticated(s.port, []);
        const results = await Promise.all(
          Array.from({ length: 4102 }, () => forward(greedy, '127.0.0.1', target.port)),
        );
        const served = results.filter((r) => r.result === 'ok').length;
        const outcomes = new Map<string, number>();
        for (const { result } of results) outcomes.set(result, (outcomes.get(result) ?? 0) + 1);
        assert.equal(served, 4096, `${served} served: ${JSON.stringify(Object.fromEntries(outcomes))}`);
        await until(() => target.sockets.size >= 4096, 10_000, 'the target has every connection');
        assert.equal(target.sockets.size, 4096, 'one target connection each, no more');
        const refused = await s.cli.waitFor('channels-refused');
        assert.match(refused.message, /has 4096 forwarded connections open \(--max-channels 4096\)/);
        assert.equal(refused.limit, 4096);
        // Another client (from the same address) authenticates and forwards meanwhile.
        const other = await authenticated(s.port, []);
        const { result, channel } = await forward(other, '127.0.0.1', target.port);
        assert.equal(result, 'ok');
        channel!.write('still here');
        const [echo] = (await once(channel!, 'data')) as [Buffer];
        assert.equal(echo.toString(), 'still here');
        other.destroy();
        greedy.destroy();
        // The refusals not yet reported are, when the client goes.
        await s.cli.waitFor((e) => e.event === 'client-down');
        await until(
          () =>
            s.cli.events
              .filter((e) => e.event === 'channels-refused')
              .reduce((sum, e) => sum + (e.count as number), 0) === 6,
          5000,
          `six refusals reported: ${s.cli.describe()}`,
        );
        await s.cli.stop();
      } finally {
        target.close();
      }
    },
  );

  test(
    '--max-channels 2: the third -L connection of a client is reset, the server says so once, and a connection gets through once one closed',
    { timeout: TIMEOUT },
    async () => {
      const target = await echoTarget();
      try {
        const s = await server(['--allow', `127.0.0.1:${target.port}`, '--max-channels', '2']);
        const c = await startClient(s.port, ['--token-file', work.tokenFile, '-L', `0:127.0.0.1:${target.port}`]);
        processes.push(c);
        const [port] = localPorts(c);
        const echoed = async (socket: net.Socket, text: string): Promise<void> => {
          socket.write(text);
          const [reply] = (await once(socket, 'data')) as [Buffer];
          assert.equal(reply.toString(), text);
        };
        const open = async (): Promise<net.Socket> => {
          const socket = net.connect(port!, '127.0.0.1');
          socket.on('error', () => {});
          await once(socket, 'connect');
          return socket;
        };
        const first = await open();
        const second = await open();
        await echoed(first, 'one');
        await echoed(second, 'two');
        const third = await open();
        third.write('three');
        await new Promise((resolve) => third.once('close', resolve)); // reset (ECONNRESET)
        const failed = await c.waitFor('forward-failed');
        assert.match(failed.message, /refused/);
        const refused = await s.cli.waitFor('channels-refused');
        assert.match(refused.message, /has 2 forwarded connections open \(--max-channels 2\)/);
        first.destroy();
        await until(() => target.sockets.size === 1, 5000, 'the first connection closed at the target');
        // The server hears of that close from the target's socket while the next connection's channel comes from
        // the client's: one that arrives first is still refused. It gets through once the server has it.
        let fourth: net.Socket | undefined;
        for (let attempt = 0; attempt < 20 && fourth === undefined; attempt++) {
          const socket = await open();
          try {
            await within(echoed(socket, 'four'), 2000, 'the echo through the fourth connection');
            fourth = socket;
          } catch {
            socket.destroy();
            await new Promise((resolve) => setTimeout(resolve, 100));
          }
        }
        assert.ok(fourth !== undefined, 'a connection got through once one closed');
        second.destroy();
        fourth.destroy();
        await c.stop();
        await s.cli.stop();
      } finally {
        target.close();
      }
    },
  );

  test(
    'a token holder asking for 2,000 denied targets makes one denied line, then counted ones: the counts add up to 2,000 when the server stops',
    { timeout: TIMEOUT },
    async () => {
      const target = await echoTarget();
      try {
        const s = await server(['--allow', `127.0.0.1:${target.port}`]);
        const session = await authenticated(s.port, []);
        const asked: string[] = [];
        for (let batch = 0; batch < 20; batch++) {
          const answers = await Promise.all(
            Array.from({ length: 100 }, (_, i) => forward(session, '127.0.0.1', 1000 + batch * 100 + i)),
          );
          for (const answer of answers) {
            asked.push(answer.result);
            answer.channel?.destroy();
          }
        }
        assert.ok(
          asked.every((answer) => answer === 'ERR_TUNNEL_DENIED'),
          [...new Set(asked)].join(', '),
        );
        const during = s.cli.events.filter((e) => e.event === 'denied');
        assert.ok(during.length <= 2, `${during.length} denied lines for 2,000 channels`);
        assert.match(during[0]!.message, /127\.0\.0\.1:1000/);
        session.destroy();
        await s.cli.stop();
        const all = s.cli.events.filter((e) => e.event === 'denied');
        const counted = all.reduce((sum, e) => sum + Number(e.count ?? 0), 0);
        assert.equal(counted, 2000, all.map((e) => e.message).join('\n'));
        assert.match(all.at(-1)!.message, /more like this within 10 s; the latest: .*127\.0\.0\.1:2999/);
      } finally {
        target.close();
      }
    },
  );

  test(
    "the server's human log shows a client's hosts as one line each: a host with a line break or an escape is refused, not written",
    { timeout: TIMEOUT },
    async () => {
      const plain = new PlainCli([
        'server',
        '--listen',
        '127.0.0.1:0',
        '--token-file',
        work.tokenFile,
        '--allow',
        '127.0.0.1:9',
      ]);
      processes.push(plain);
      const port = Number((await plain.waitFor(/listening on 127\.0\.0\.1:(\d+)/))[1]);
      const forged =
        'x\nmuxwire: client 203.0.113.9:4444 presented a wrong token; refused after 1000 ms\n\x1b[2K\x1b[1A';
      // In the hello: the handshake fails.
      const socket = net.connect(port, '127.0.0.1');
      await once(socket, 'connect');
      const session = new Session(socket, 'client', { keepAliveInterval: 0 });
      const control = session.dial();
      control.on('error', () => {});
      control.write(
        encode({ type: 'hello', version: 1, token: work.token, forwards: [{ kind: 'L', host: forged, port: 80 }] }),
      );
      await assert.rejects(readMessage(control, 5000));
      await plain.waitFor(/host must be a host name or address/);
      // In a connect request after a clean hello: that channel fails.
      const clean = await authenticated(port, [{ kind: 'L', host: '127.0.0.1', port: 9 }]);
      const { result } = await forward(clean, forged, 81);
      assert.notEqual(result, 'ok');
      await plain.waitFor(/a forwarded channel failed: control protocol: host must be a host name or address/);
      clean.destroy();
      await plain.stop();
      const lines = plain.stderr.split('\n').slice(0, -1);
      for (const line of lines) assert.match(line, /^muxwire: /, JSON.stringify(line));
      assert.ok(!plain.stderr.includes('203.0.113.9'), plain.stderr);
      assert.ok(!plain.stderr.includes('\x1b'), JSON.stringify(plain.stderr));
    },
  );

  test(
    "the client's human log shows a server's refusal on one line, its line breaks and escapes escaped",
    { timeout: TIMEOUT },
    async () => {
      const fake = net.createServer((socket) => {
        socket.on('error', () => {});
        const session = new Session(socket, 'server', { keepAliveInterval: 0 });
        void session.accept().then(async (control) => {
          control.on('error', () => {});
          await readMessage(control, 5000);
          control.write(
            encode({
              type: 'welcome',
              version: 1,
              results: [
                {
                  ok: false,
                  code: 'ERR_TUNNEL_DENIED',
                  message: 'no\nmuxwire: connected to 127.0.0.1:7000\n\x1b[2K\x1b[1A',
                },
              ],
            }),
          );
        });
      });
      await new Promise<void>((resolve) => fake.listen(0, '127.0.0.1', resolve));
      try {
        const plain = new PlainCli([
          'client',
          '--server',
          `127.0.0.1:${(fake.address() as net.AddressInfo).port}`,
          '--token-file',
          work.tokenFile,
          '--retries',
          '0',
          '-L',
          '0:127.0.0.1:9',
        ]);
        processes.push(plain);
        await once(plain.child, 'exit');
        const lines = plain.stderr.split('\n').slice(0, -1);
        assert.ok(
          lines.includes('muxwire: -L 0:127.0.0.1:9: no\\nmuxwire: connected to 127.0.0.1:7000\\n\\x1b[2K\\x1b[1A'),
          plain.stderr,
        );
        for (const line of lines) assert.match(line, /^muxwire: /, JSON.stringify(line));
        assert.ok(!plain.stderr.includes('\x1b'));
      } finally {
        fake.close();
      }
    },
  );

  test(
    'a TLS server logs a connection refused for want of a handshake place once (not also as a failed TLS handshake)',
    { timeout: TIMEOUT },
    async () => {
      const s = await server(['--tls-cert', certFile, '--tls-key', keyFile]);
      const sockets: net.Socket[] = [];
      try {
        for (let i = 0; i < 40; i++) {
          const socket = net.connect({ port: s.port, host: '127.0.0.1', localAddress: '127.0.0.3' });
          socket.on('error', () => {});
          await once(socket, 'connect');
          sockets.push(socket);
        }
        const refusals = (): number =>
          s.cli.events.filter((e) => e.event === 'handshake-failed' && e.message.includes('32 handshakes from')).length;
        await until(() => refusals() === 8, 5000, `8 refusals: ${s.cli.describe()}`);
        for (const event of s.cli.events.filter((e) => e.event === 'handshake-failed')) {
          assert.equal(event.code, 'ERR_TUNNEL_BUSY', 'a refusal for want of a place is no timeout');
        }
        await new Promise((resolve) => setTimeout(resolve, 1000));
        assert.equal(
          s.cli.events.filter((e) => e.event === 'tls-failed').length,
          0,
          `no tls-failed beside them:\n${s.cli.describe()}`,
        );
      } finally {
        for (const socket of sockets) socket.destroy();
      }
      await s.cli.stop();
    },
  );

  test(
    'TLS, ws and wss servers log a connection closed for not finishing its handshake in 10 s, once; a ws server names the WebSocket, not TLS, as the likely mismatch',
    { timeout: TIMEOUT },
    async () => {
      const ws = await server(['--ws', '/t']);
      const wss = await server(['--ws', '/t', '--tls-cert', certFile, '--tls-key', keyFile]);
      const secure = await server(['--tls-cert', certFile, '--tls-key', keyFile]);
      const silent = await Promise.all(
        [ws, wss, secure].map(async (s) => {
          const socket = net.connect(s.port, '127.0.0.1');
          socket.on('error', () => {});
          await once(socket, 'connect');
          return socket;
        }),
      );
      try {
        const closed = await Promise.all([
          ws.cli.waitFor('handshake-failed', 15_000),
          wss.cli.waitFor('handshake-failed', 15_000),
        ]);
        assert.match(closed[0].message, /closed: its WebSocket handshake did not finish within 10 s$/);
        assert.match(closed[1].message, /closed: its TLS and WebSocket handshakes did not finish within 10 s$/);
        assert.equal(closed[0].code, 'ERR_TUNNEL_TIMEOUT');
        // TLS: the TLS server's own handshake timeout and the listener's deadline, both 10 s: one line.
        await secure.cli.waitFor((e) => e.event === 'tls-failed' || e.event === 'handshake-failed', 15_000);
        await new Promise((resolve) => setTimeout(resolve, 500));
        for (const s of [ws, wss, secure]) {
          const lines = s.cli.events.filter((e) => e.event === 'handshake-failed' || e.event === 'tls-failed');
          assert.equal(lines.length, 1, s.cli.describe());
        }
      } finally {
        for (const socket of silent) socket.destroy();
      }
      // A WebSocket client that does not speak the tunnel's protocol.
      const stranger = new WebSocket(`ws://127.0.0.1:${ws.port}/t`);
      stranger.on('error', () => {});
      await once(stranger, 'open');
      stranger.send(Buffer.from('GET / HTTP/1.1\r\n\r\n'));
      const failed = await ws.cli.waitFor(
        (e) => e.event === 'handshake-failed' && e.message.includes('ended before the handshake'),
      );
      assert.match(failed.message, /a WebSocket client that is not a muxwire tunnel client\?\)$/);
      assert.doesNotMatch(failed.message, /plain TCP server/);
      stranger.terminate();
      await Promise.all([ws.cli.stop(), wss.cli.stop(), secure.cli.stop()]);
    },
  );
});
