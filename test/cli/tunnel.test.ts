/**
 * The `muxwire` command end to end, as separate processes on 127.0.0.1, with curl (Debian) as the program
 * whose traffic crosses the tunnel: -L and -R over TCP and TLS, and each way it must refuse: a wrong token,
 * a denied target, an untrusted certificate; clear errors for a port in use and an unreachable server;
 * graceful shutdown on SIGTERM.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import { ChannelResetError, Session, TransportClosedError } from '../../src/index.js';
import { WS_MAX_MESSAGE_BYTES, encode, expectMessage, readMessage } from '../../src/cli/protocol.js';
import { announceWebSocketMessage, pseudoRandomBytes, refusedPort, until, within } from '../helpers.js';
import { selfSignedCertificate } from '../support/self-signed.js';
import {
  Cli,
  curl,
  curlFails,
  echoTarget,
  freePort,
  httpTarget,
  localPorts,
  requirePrograms,
  run,
  startClient,
  startServer,
  workDir,
} from './harness.js';

const TIMEOUT = 60_000;

if (requirePrograms('muxwire tunnel with curl', ['curl'], 'curl')) {
  describe('muxwire tunnel with curl', { timeout: TIMEOUT * 10 }, () => {
    const work = workDir();
    const goodTls = selfSignedCertificate('localhost');
    const otherTls = selfSignedCertificate('localhost');
    let certFile = '';
    let keyFile = '';
    let otherCertFile = '';
    const processes: Cli[] = [];
    let target: Awaited<ReturnType<typeof httpTarget>>;

    before(async () => {
      certFile = work.write('cert.pem', goodTls.cert);
      keyFile = work.write('key.pem', goodTls.key, 0o600);
      otherCertFile = work.write('other.pem', otherTls.cert);
      target = await httpTarget();
    });
    after(async () => {
      await Promise.all(processes.map((p) => p.stop('SIGKILL')));
      await target.close();
      work.remove();
    });

    async function server(args: string[], env: Record<string, string> = {}): Promise<{ cli: Cli; port: number }> {
      const started = await startServer(args, env);
      processes.push(started.cli);
      return started;
    }
    async function client(port: number, args: string[], env: Record<string, string> = {}): Promise<Cli> {
      const cli = await startClient(port, args, env);
      processes.push(cli);
      return cli;
    }
    /** A client session of the test's own over TCP, speaking the tunnel's protocol by hand. */
    async function rawClient(port: number): Promise<Session> {
      const socket = net.connect(port, '127.0.0.1');
      await new Promise((resolve) => socket.once('connect', resolve));
      return new Session(socket, 'client', { keepAliveInterval: 0 });
    }
    function spawnClient(port: number, args: string[]): Cli {
      const cli = new Cli(['client', '--server', `127.0.0.1:${port}`, ...args]);
      processes.push(cli);
      return cli;
    }
    const allowTarget = (): string[] => ['--allow', `127.0.0.1:${target.port}`];

    test('curl reaches a local HTTP server through -L over TCP', { timeout: TIMEOUT }, async () => {
      const s = await server(['--token-file', work.tokenFile, ...allowTarget()]);
      const c = await client(s.port, ['--token-file', work.tokenFile, '-L', `0:127.0.0.1:${target.port}`]);
      const [port] = localPorts(c);
      assert.equal(await curl(`http://127.0.0.1:${port}/`), 'hello through the tunnel\n');
      assert.equal(await c.stop(), 0);
      assert.equal(await s.cli.stop(), 0);
    });

    test(
      'curl reaches a client-side HTTP server through -R (the server listens), token from the environment',
      { timeout: TIMEOUT },
      async () => {
        const env = { MUXWIRE_TOKEN: work.token };
        const s = await server(['--allow-remote', '127.0.0.1:*'], env);
        const c = await client(s.port, ['-R', `0:127.0.0.1:${target.port}`], env);
        const remote = await c.waitFor('remote-listening');
        assert.equal(await curl(`http://127.0.0.1:${remote.port}/`), 'hello through the tunnel\n');
        await c.stop();
        await s.cli.stop();
      },
    );

    test('-L and -R several at once share one session, over TLS verified with --ca', { timeout: TIMEOUT }, async () => {
      const other = await httpTarget('the other target\n');
      try {
        const s = await server([
          '--token-file',
          work.tokenFile,
          '--tls-cert',
          certFile,
          '--tls-key',
          keyFile,
          ...allowTarget(),
          '--allow',
          `127.0.0.1:${other.port}`,
          '--allow-remote',
          '127.0.0.1:*',
        ]);
        const c = await client(s.port, [
          '--token-file',
          work.tokenFile,
          '--tls',
          '--ca',
          certFile,
          '-L',
          `0:127.0.0.1:${target.port}`,
          '-L',
          `127.0.0.1:0:127.0.0.1:${other.port}`,
          '-R',
          `0:127.0.0.1:${target.port}`,
          '-R',
          `0:127.0.0.1:${other.port}`,
        ]);
        const [first, second] = localPorts(c);
        assert.equal(await curl(`http://127.0.0.1:${first}/`), 'hello through the tunnel\n');
        assert.equal(await curl(`http://127.0.0.1:${second}/`), 'the other target\n');
        const remotes = c.events.filter((e) => e.event === 'remote-listening');
        assert.equal(remotes.length, 2);
        assert.equal(await curl(`http://127.0.0.1:${remotes[0]!.port}/`), 'hello through the tunnel\n');
        assert.equal(await curl(`http://127.0.0.1:${remotes[1]!.port}/`), 'the other target\n');
        assert.equal(
          s.cli.events.filter((e) => e.event === 'client-up').length,
          1,
          'one session carried all four forwards',
        );
        await c.stop();
        await s.cli.stop();
      } finally {
        await other.close();
      }
    });

    test(
      'a --tls-key file its group or other users can read is used, with a warning naming chmod 600',
      { timeout: TIMEOUT },
      async () => {
        const openKey = work.write('open-key.pem', goodTls.key, 0o640);
        const warned = await server([
          '--token-file',
          work.tokenFile,
          '--tls-cert',
          certFile,
          '--tls-key',
          openKey,
          ...allowTarget(),
        ]);
        const warning = warned.cli.events.find((e) => e.event === 'key-readable');
        assert.equal(warning?.path, openKey, warned.cli.describe());
        assert.match(warning?.message ?? '', /can be read by its group \(mode 640\).*pose as this server: chmod 600 /);
        const c = await client(warned.port, [
          '--token-file',
          work.tokenFile,
          '--tls',
          '--ca',
          certFile,
          '-L',
          `0:127.0.0.1:${target.port}`,
        ]);
        const [port] = localPorts(c);
        assert.equal(await curl(`http://127.0.0.1:${port}/`), 'hello through the tunnel\n');
        await c.stop();
        await warned.cli.stop();
        const quiet = await server(['--token-file', work.tokenFile, '--tls-cert', certFile, '--tls-key', keyFile]);
        assert.equal(quiet.cli.events.filter((e) => e.event === 'key-readable').length, 0, quiet.cli.describe());
        await quiet.cli.stop();
      },
    );

    test(
      'over WebSocket (--ws): curl through -L and -R on ws://, and a plain HTTP request to the path gets 426',
      { timeout: TIMEOUT },
      async () => {
        const s = await server([
          '--token-file',
          work.tokenFile,
          '--ws',
          '/tunnel',
          ...allowTarget(),
          '--allow-remote',
          '127.0.0.1:*',
        ]);
        assert.equal(s.cli.events.find((e) => e.event === 'listening')!.ws, '/tunnel');
        const c = await client(0, [
          '--token-file',
          work.tokenFile,
          '--ws',
          `ws://127.0.0.1:${s.port}/tunnel`,
          '-L',
          `0:127.0.0.1:${target.port}`,
          '-R',
          `0:127.0.0.1:${target.port}`,
        ]);
        assert.equal(await curl(`http://127.0.0.1:${localPorts(c)[0]}/`), 'hello through the tunnel\n');
        const remote = await c.waitFor('remote-listening');
        assert.equal(await curl(`http://127.0.0.1:${remote.port}/`), 'hello through the tunnel\n');
        const { run } = await import('./harness.js');
        const { stdout } = await run('curl', [
          '-sS',
          '-o',
          '/dev/null',
          '-w',
          '%{http_code}',
          '--max-time',
          '5',
          `http://127.0.0.1:${s.port}/tunnel`,
        ]);
        assert.equal(stdout, '426');
        await c.stop();
        await s.cli.stop();
      },
    );

    test(
      'over WebSocket, a message announced larger than 256 KiB (the most a tunnel end sends in one), or fragments adding up to more, is refused at once with close code 1009, by the server and by the client',
      { timeout: TIMEOUT },
      async () => {
        // Before, each end took messages up to a window and a frame header (64 MiB + 12), which `ws` holds
        // whole: 32 unauthenticated connections from one address could make the server hold 2 GiB.
        assert.equal(WS_MAX_MESSAGE_BYTES, 256 * 1024);
        // The server: a raw client announces one byte more than the limit (and sends none of it), or 1 MiB.
        const s = await server(['--token-file', work.tokenFile, '--ws', '/tunnel', ...allowTarget()]);
        assert.equal(await announceWebSocketMessage(s.port, '/tunnel', WS_MAX_MESSAGE_BYTES + 1), 1009);
        assert.equal(await announceWebSocketMessage(s.port, '/tunnel', 1024 * 1024), 1009);
        // A message in 64 KiB fragments, never finished: closed once they add up to more than the limit.
        const fragmenter = new WebSocket(`ws://127.0.0.1:${s.port}/tunnel`, { perMessageDeflate: false });
        fragmenter.on('error', () => {});
        await once(fragmenter, 'open');
        const closedWith = new Promise<number>((resolve) => fragmenter.once('close', (code: number) => resolve(code)));
        for (let i = 0; i < 5; i++) fragmenter.send(Buffer.alloc(64 * 1024), { binary: true, fin: false });
        assert.equal(await closedWith, 1009);
        await s.cli.stop();
        // The client: a WebSocket server that announces as much to it.
        const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
        await once(wss, 'listening');
        try {
          const closed = new Promise<number>((resolve) => {
            wss.on('connection', (ws) => {
              ws.on('close', (code) => resolve(code));
              const header = Buffer.alloc(10);
              header[0] = 0x82; // final, binary; a server's frames are not masked
              header[1] = 127; // 64-bit length
              header.writeBigUInt64BE(BigInt(WS_MAX_MESSAGE_BYTES + 1), 2);
              (ws as unknown as { _socket: net.Socket })._socket.write(header);
            });
          });
          const c = new Cli([
            'client',
            '--ws',
            `ws://127.0.0.1:${(wss.address() as net.AddressInfo).port}/t`,
            '--retries',
            '0',
            '--token-file',
            work.tokenFile,
            '-L',
            `0:127.0.0.1:${target.port}`,
          ]);
          processes.push(c);
          assert.equal(await closed, 1009);
          await c.waitFor('fatal');
        } finally {
          wss.close();
        }
      },
    );

    test(
      'over WebSocket, 32 MiB cross -L each way whole (every message within the 256 KiB the other end takes)',
      { timeout: TIMEOUT },
      async () => {
        const echo = await echoTarget();
        const echoPort = echo.port;
        try {
          const s = await server(['--token-file', work.tokenFile, '--ws', '/t', '--allow', `127.0.0.1:${echoPort}`]);
          const c = await client(0, [
            '--token-file',
            work.tokenFile,
            '--ws',
            `ws://127.0.0.1:${s.port}/t`,
            '-L',
            `0:127.0.0.1:${echoPort}`,
          ]);
          const data = pseudoRandomBytes(32 * 1024 * 1024, 7);
          const socket = net.connect({ port: localPorts(c)[0]!, host: '127.0.0.1', allowHalfOpen: true });
          const chunks: Buffer[] = [];
          socket.on('data', (chunk: Buffer) => chunks.push(chunk));
          await once(socket, 'connect');
          socket.end(data);
          await once(socket, 'end');
          const back = Buffer.concat(chunks);
          assert.equal(back.length, data.length);
          assert.ok(back.equals(data), 'the bytes came back whole and in order');
          socket.destroy();
          assert.equal(
            c.events.some((e) => e.event === 'session-down'),
            false,
            c.describe(),
          );
          await c.stop();
          await s.cli.stop();
        } finally {
          echo.close();
        }
      },
    );

    test(
      "a forwarded connection that sent its request with a FIN and then reset: the target's connection is reset too, not closed as if the reply was taken",
      { timeout: TIMEOUT },
      async () => {
        let targetSocket: net.Socket | undefined;
        let closedWithError!: (hadError: boolean) => void;
        const closed = new Promise<boolean>((resolve) => (closedWithError = resolve));
        const half = net.createServer({ allowHalfOpen: true }, (socket) => {
          targetSocket = socket;
          socket.on('error', () => {});
          socket.on('close', (hadError) => closedWithError(hadError));
          socket.resume();
        });
        half.listen(0, '127.0.0.1');
        await once(half, 'listening');
        const targetPort = (half.address() as net.AddressInfo).port;
        try {
          const s = await server(['--token-file', work.tokenFile, '--allow', `127.0.0.1:${targetPort}`]);
          const c = await client(s.port, ['--token-file', work.tokenFile, '-L', `0:127.0.0.1:${targetPort}`]);
          const local = net.connect({ port: localPorts(c)[0]!, host: '127.0.0.1', allowHalfOpen: true });
          local.on('error', () => {});
          await once(local, 'connect');
          local.end('request');
          await until(() => targetSocket?.readableEnded === true, 10_000, 'the request and its FIN');
          local.resetAndDestroy();
          // The reply, written after the reset reached the tunnel: it must fail, as it would over TCP.
          await new Promise((resolve) => setTimeout(resolve, 300));
          targetSocket!.write('part 1 of the reply;');
          await new Promise((resolve) => setTimeout(resolve, 300));
          if (!targetSocket!.destroyed) targetSocket!.end('part 2');
          assert.equal(await within(closed, 10_000, "the target's connection to close"), true, 'closed with an error');
          await c.stop();
          await s.cli.stop();
        } finally {
          targetSocket?.destroy();
          half.close();
        }
      },
    );

    test(
      "forwarded connections that end in a reset, 4,000 as fast as they come, do not end the session (each resets its channel: a tunnel's reset bound, not the default, which they ran through)",
      { timeout: TIMEOUT },
      async () => {
        const s = await server(['--token-file', work.tokenFile, ...allowTarget()]);
        const c = await client(s.port, ['--token-file', work.tokenFile, '-L', `0:127.0.0.1:${target.port}`]);
        const [port] = localPorts(c);
        const abort = async (): Promise<void> => {
          const socket = net.connect(port!, '127.0.0.1');
          socket.on('error', () => {});
          await once(socket, 'connect');
          socket.write('GET / HTTP/1.1\r\nHost: x\r\n'); // a request cut short: the target waits for the rest
          await new Promise((resolve) => setTimeout(resolve, 10)); // the channel is open at both ends by now
          socket.resetAndDestroy();
        };
        for (let i = 0; i < 4000; i += 200) await Promise.all(Array.from({ length: 200 }, abort));
        await new Promise((resolve) => setTimeout(resolve, 200));
        assert.equal(await curl(`http://127.0.0.1:${port}/`), 'hello through the tunnel\n');
        assert.equal(
          c.events.some((e) => e.event === 'session-down'),
          false,
          c.describe(),
        );
        await c.stop();
        await s.cli.stop();
      },
    );

    test(
      'over WebSocket with TLS (wss://, --ca): curl through -L; a wrong path is a clear error',
      { timeout: TIMEOUT },
      async () => {
        const s = await server([
          '--token-file',
          work.tokenFile,
          '--ws',
          '/t',
          '--tls-cert',
          certFile,
          '--tls-key',
          keyFile,
          ...allowTarget(),
        ]);
        const c = await client(0, [
          '--token-file',
          work.tokenFile,
          '--ws',
          `wss://localhost:${s.port}/t`,
          '--ca',
          certFile,
          '-L',
          `0:127.0.0.1:${target.port}`,
        ]);
        assert.equal(await curl(`http://127.0.0.1:${localPorts(c)[0]}/`), 'hello through the tunnel\n');
        await c.stop();
        const lost = new Cli([
          'client',
          '--ws',
          `wss://localhost:${s.port}/elsewhere`,
          '--ca',
          certFile,
          '--retries',
          '0',
          '--token-file',
          work.tokenFile,
          '-L',
          `0:127.0.0.1:${target.port}`,
        ]);
        processes.push(lost);
        const fatal = await lost.waitFor('fatal');
        assert.equal(fatal.code, 'ERR_TUNNEL_UNREACHABLE');
        assert.match(fatal.message, /answered HTTP 400, not a WebSocket/);
        const untrusted = new Cli([
          'client',
          '--ws',
          `wss://localhost:${s.port}/t`,
          '--ca',
          otherCertFile,
          '--token-file',
          work.tokenFile,
          '-L',
          `0:127.0.0.1:${target.port}`,
        ]);
        processes.push(untrusted);
        assert.equal((await untrusted.waitFor('fatal')).code, 'ERR_TUNNEL_CERT');
        const failed = await s.cli.waitFor('tls-failed');
        assert.match(String(failed.remote), /^127\.0\.0\.1:[1-9]\d*$/, 'the client is named by its address');
        await s.cli.stop();
      },
    );

    test(
      'TLS with --fingerprint: the right one connects, another is refused as ERR_TUNNEL_CERT',
      { timeout: TIMEOUT },
      async () => {
        const s = await server([
          '--token-file',
          work.tokenFile,
          '--tls-cert',
          certFile,
          '--tls-key',
          keyFile,
          ...allowTarget(),
        ]);
        const { X509Certificate } = await import('node:crypto');
        const fingerprint = new X509Certificate(goodTls.cert).fingerprint256;
        const c = await client(s.port, [
          '--token-file',
          work.tokenFile,
          '--tls',
          '--fingerprint',
          fingerprint,
          '-L',
          `0:127.0.0.1:${target.port}`,
        ]);
        assert.equal(await curl(`http://127.0.0.1:${localPorts(c)[0]}/`), 'hello through the tunnel\n');
        await c.stop();
        const wrong = new X509Certificate(otherTls.cert).fingerprint256;
        const before = target.connections();
        const bad = spawnClient(s.port, [
          '--token-file',
          work.tokenFile,
          '--tls',
          '--fingerprint',
          wrong,
          '-L',
          `0:127.0.0.1:${target.port}`,
        ]);
        const fatal = await bad.waitFor('fatal');
        assert.equal(fatal.code, 'ERR_TUNNEL_CERT');
        assert.match(fatal.message, /fingerprint/);
        assert.equal(await bad.exited, 1);
        assert.equal(target.connections(), before, 'nothing was forwarded');
        await s.cli.stop();
      },
    );

    test(
      'a wrong TLS certificate (not signed by --ca) is refused on both ends, nothing forwarded',
      { timeout: TIMEOUT },
      async () => {
        const s = await server([
          '--token-file',
          work.tokenFile,
          '--tls-cert',
          certFile,
          '--tls-key',
          keyFile,
          ...allowTarget(),
        ]);
        const before = target.connections();
        const c = spawnClient(s.port, [
          '--token-file',
          work.tokenFile,
          '--tls',
          '--ca',
          otherCertFile,
          '-L',
          `0:127.0.0.1:${target.port}`,
        ]);
        const fatal = await c.waitFor('fatal');
        assert.equal(fatal.code, 'ERR_TUNNEL_CERT');
        assert.match(fatal.message, /not trusted/);
        assert.equal(await c.exited, 1);
        const failed = await s.cli.waitFor('tls-failed');
        assert.match(String(failed.remote), /^127\.0\.0\.1:[1-9]\d*$/, 'the client is named by its address');
        assert.match(failed.message, /^TLS handshake with 127\.0\.0\.1:[1-9]\d* failed/);
        assert.equal(
          s.cli.events.some((e) => e.event === 'client-up'),
          false,
        );
        assert.equal(target.connections(), before, 'nothing was forwarded');
        await s.cli.stop();
      },
    );

    test(
      'a plain TCP client at a TLS server gets a clear error naming --tls, and the server logs the failed handshake',
      { timeout: TIMEOUT },
      async () => {
        const s = await server([
          '--token-file',
          work.tokenFile,
          '--tls-cert',
          certFile,
          '--tls-key',
          keyFile,
          ...allowTarget(),
        ]);
        const c = spawnClient(s.port, [
          '--token-file',
          work.tokenFile,
          '--retries',
          '0',
          '-L',
          `0:127.0.0.1:${target.port}`,
        ]);
        const fatal = await c.waitFor('fatal');
        assert.equal(fatal.code, 'ERR_TUNNEL_UNREACHABLE');
        assert.match(fatal.message, /check that --tls and --ws match/);
        assert.equal(await c.exited, 1);
        await s.cli.waitFor('tls-failed');
        await s.cli.stop();
      },
    );

    test(
      'a server that accepts and stays silent, and a --ws server reached without --ws: the client says the handshake failed, without the session-level detail',
      { timeout: TIMEOUT },
      async () => {
        const silent = net.createServer((socket) => socket.on('error', () => {}));
        await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
        try {
          const c = spawnClient((silent.address() as net.AddressInfo).port, [
            '--token-file',
            work.tokenFile,
            '--retries',
            '0',
            '-L',
            `0:127.0.0.1:${target.port}`,
          ]);
          const fatal = await c.waitFor('fatal', 30_000);
          assert.match(
            fatal.message,
            /did not complete the handshake: no answer within 10 s \(check that --tls and --ws match how it listens, and that it is a muxwire server; or it is stopped or overloaded/,
          );
          assert.doesNotMatch(fatal.message, /ping|closed the connection/);
        } finally {
          silent.close();
        }
        const s = await server(['--token-file', work.tokenFile, '--ws', '/t', ...allowTarget()]);
        const plain = spawnClient(s.port, [
          '--token-file',
          work.tokenFile,
          '--retries',
          '0',
          '-L',
          `0:127.0.0.1:${target.port}`,
        ]);
        const fatal = await plain.waitFor('fatal');
        assert.equal(fatal.code, 'ERR_TUNNEL_UNREACHABLE');
        assert.match(
          fatal.message,
          /did not answer in muxwire's protocol \(check that --tls and --ws match how it listens, and that it is a muxwire server\)/,
        );
        assert.doesNotMatch(fatal.message, /protocol version/);
        await s.cli.stop();
      },
    );

    test(
      'a TLS client at a plain TCP server gets ERR_TUNNEL_TLS naming the mismatch, and the server says why the connection ended',
      { timeout: TIMEOUT },
      async () => {
        const s = await server(['--token-file', work.tokenFile, ...allowTarget()]);
        const c = spawnClient(s.port, ['--token-file', work.tokenFile, '--tls', '-L', `0:127.0.0.1:${target.port}`]);
        const fatal = await c.waitFor('fatal');
        assert.equal(fatal.code, 'ERR_TUNNEL_TLS');
        assert.match(fatal.message, /does not speak TLS there/);
        assert.equal(await c.exited, 1);
        const failed = await s.cli.waitFor('handshake-failed');
        assert.match(failed.message, /ended before the handshake .*TLS or WebSocket to a plain TCP server/);
        assert.equal(
          s.cli.events.some((e) => e.event === 'client-down'),
          false,
        );
        await s.cli.stop();
      },
    );

    test(
      '--ws clients at servers set up differently are told so: wss:// at a plain server (ERR_TUNNEL_TLS, the client stops), ws:// at a plain tunnel server and at a TLS one',
      { timeout: TIMEOUT },
      async () => {
        const wsClient = (url: string): Cli => {
          const cli = new Cli([
            'client',
            '--ws',
            url,
            '--retries',
            '0',
            '--token-file',
            work.tokenFile,
            '-L',
            `0:127.0.0.1:${target.port}`,
          ]);
          processes.push(cli);
          return cli;
        };
        const plain = await server(['--token-file', work.tokenFile, '--ws', '/t', ...allowTarget()]);
        // Before, OpenSSL's own text ("write EPROTO ...:wrong version number:...") as ERR_TUNNEL_UNREACHABLE,
        // retried for ever.
        const secure = wsClient(`wss://127.0.0.1:${plain.port}/t`);
        const tlsFatal = await secure.waitFor('fatal');
        assert.equal(tlsFatal.code, 'ERR_TUNNEL_TLS');
        assert.match(tlsFatal.message, /the server does not speak TLS there: use ws:\/\//);
        assert.doesNotMatch(tlsFatal.message, /EPROTO|ssl3_get_record/);
        assert.equal(await secure.exited, 1);
        await plain.cli.stop();
        const tcp = await server(['--token-file', work.tokenFile, ...allowTarget()]);
        const atTcp = await wsClient(`ws://127.0.0.1:${tcp.port}/t`).waitFor('fatal');
        assert.equal(atTcp.code, 'ERR_TUNNEL_UNREACHABLE');
        assert.match(atTcp.message, /did not answer in HTTP \(a tunnel server without --ws\?/);
        assert.doesNotMatch(atTcp.message, /Parse Error/);
        await tcp.cli.stop();
        const tls = await server([
          '--token-file',
          work.tokenFile,
          '--ws',
          '/t',
          '--tls-cert',
          certFile,
          '--tls-key',
          keyFile,
          ...allowTarget(),
        ]);
        const atTls = await wsClient(`ws://127.0.0.1:${tls.port}/t`).waitFor('fatal');
        assert.equal(atTls.code, 'ERR_TUNNEL_UNREACHABLE');
        assert.match(atTls.message, /a server with --tls-cert\? its URL is wss:\/\//);
        await tls.cli.stop();
      },
    );

    test(
      'a wrong token is refused after a delay and logged by the server; the client stops; nothing forwarded',
      { timeout: TIMEOUT },
      async () => {
        const s = await server(['--token-file', work.tokenFile, ...allowTarget()]);
        // As long as the right token, and differing only in its last character: only a comparison of the
        // contents refuses it.
        const wrong = `${work.token.slice(0, -1)}${work.token.endsWith('x') ? 'y' : 'x'}`;
        assert.equal(wrong.length, work.token.length);
        const wrongToken = work.write('wrong-token', `${wrong}\n`);
        const before = target.connections();
        const started = performance.now();
        const c = spawnClient(s.port, ['--token-file', wrongToken, '-L', `0:127.0.0.1:${target.port}`]);
        const port = (await c.waitFor('local-listening')).port!;
        const fatal = await c.waitFor('fatal');
        assert.equal(fatal.code, 'ERR_TUNNEL_AUTH');
        assert.match(fatal.message, /refused the token/);
        assert.ok(performance.now() - started >= 900, 'the refusal came after the failure delay');
        assert.equal(await c.exited, 1);
        const logged = await s.cli.waitFor('auth-failed');
        assert.match(logged.message, /wrong token/);
        await curlFails(`http://127.0.0.1:${port}/`, 3);
        assert.equal(target.connections(), before, 'nothing was forwarded');
        await s.cli.stop();
      },
    );

    test(
      'forwards beyond what the handshake carries: 200 denied -L forwards still stop the client with ERR_TUNNEL_DENIED (the welcome carries their codes alone), a hello over 16 KiB is refused before connecting',
      { timeout: TIMEOUT },
      async () => {
        const s = await server(['--token-file', work.tokenFile, '--allow', '127.0.0.1:1']);
        const many = Array.from({ length: 200 }, (_, i) => ['-L', `0:127.0.0.1:${1000 + i}`]).flat();
        const c = spawnClient(s.port, ['--token-file', work.tokenFile, ...many]);
        const fatal = await c.waitFor('fatal');
        assert.equal(fatal.code, 'ERR_TUNNEL_DENIED', c.describe());
        assert.match(fatal.message, /^-L 0:127\.0\.0\.1:1000: not allowed by the server/);
        assert.equal(await c.exited, 1);
        assert.equal(s.cli.events.filter((e) => e.event === 'handshake-failed').length, 0, s.cli.describe());
        // 100 forwards to host names of 200 characters: a hello of about 23 KB, which no server would read.
        const host = (i: number): string =>
          `${'a'.repeat(60)}.${'b'.repeat(60)}.${'c'.repeat(60)}.d${1000 + i}.example`;
        const long = Array.from({ length: 100 }, (_, i) => ['-L', `0:${host(i)}:80`]).flat();
        const big = spawnClient(s.port, ['--token-file', work.tokenFile, ...long]);
        const refused = await big.waitFor('fatal');
        assert.equal(refused.code, 'ERR_TUNNEL_PROTOCOL');
        assert.match(refused.message, /the forwards take \d+ bytes in the handshake, more than its 16384/);
        assert.equal(await big.exited, 1);
        assert.equal(s.cli.events.filter((e) => e.event === 'handshake-failed').length, 0, 'nothing was sent');
        await s.cli.stop();
      },
    );

    test(
      'a denied -L target or -R bind stops the client with ERR_TUNNEL_DENIED, and the server refuses a channel asking for the target anyway',
      { timeout: TIMEOUT },
      async () => {
        const s = await server(['--token-file', work.tokenFile, '--allow', '127.0.0.1:1']);
        const before = target.connections();
        const c = spawnClient(s.port, ['--token-file', work.tokenFile, '-L', `0:127.0.0.1:${target.port}`]);
        const fatal = await c.waitFor('fatal');
        assert.equal(fatal.code, 'ERR_TUNNEL_DENIED');
        assert.match(fatal.message, /not allowed by the server/);
        assert.equal(await c.exited, 1);
        // The client leaves gracefully: the server sees a client that disconnected, not a broken transport.
        const down = await s.cli.waitFor('client-down');
        assert.match(down.message, /^client 127\.0\.0\.1:\d+ disconnected$/);

        // A client that ignores the answer to its hello and asks anyway: the server must still refuse.
        const socket = net.connect(s.port, '127.0.0.1');
        await new Promise((resolve) => socket.once('connect', resolve));
        const session = new Session(socket, 'client');
        try {
          const control = session.dial();
          control.write(encode({ type: 'hello', version: 1, token: work.token, forwards: [] }));
          await expectMessage(control, 5000, 'welcome');
          const channel = session.dial();
          channel.on('error', () => {});
          channel.write(encode({ type: 'connect', host: '127.0.0.1', port: target.port }));
          channel.write('GET / HTTP/1.0\r\n\r\n');
          const reply = await readMessage(channel, 5000);
          assert.equal(reply.type, 'error');
          assert.equal((reply as { code: string }).code, 'ERR_TUNNEL_DENIED');
          const denied = await s.cli.waitFor('denied');
          assert.match(denied.message, /no --allow admits/);
        } finally {
          session.destroy();
        }
        assert.equal(target.connections(), before, 'nothing was forwarded');

        // -R: a bind no --allow-remote admits is refused the same way, and no listener is opened.
        const remoteClient = spawnClient(s.port, ['--token-file', work.tokenFile, '-R', `0:127.0.0.1:${target.port}`]);
        const remoteFatal = await remoteClient.waitFor('fatal');
        assert.equal(remoteFatal.code, 'ERR_TUNNEL_DENIED');
        assert.match(
          remoteFatal.message,
          /-R bind 127\.0\.0\.1:0 is not allowed by the server \(no --allow-remote admits it\)/,
        );
        assert.equal(
          remoteClient.events.some((e) => e.event === 'remote-listening'),
          false,
        );
        await s.cli.stop();
      },
    );

    test('channels opened before authentication are not served', { timeout: TIMEOUT }, async () => {
      const s = await server(['--token-file', work.tokenFile, ...allowTarget()]);
      const before = target.connections();
      const session = await rawClient(s.port);
      try {
        // A channel is opened by its first write: the control channel (with a wrong token) goes first,
        // then one asking for an allowed target before any answer came.
        const control = session.dial();
        control.on('error', () => {});
        // A wrong token of the right length (a check of lengths alone would let it in).
        const wrong = `${work.token.slice(0, -1)}${work.token.endsWith('x') ? 'y' : 'x'}`;
        control.write(encode({ type: 'hello', version: 1, token: wrong, forwards: [] }));
        const channel = session.dial();
        channel.on('error', () => {});
        channel.write(encode({ type: 'connect', host: '127.0.0.1', port: target.port }));
        // The second channel before the welcome drops the connection: no answer to either.
        await assert.rejects(expectMessage(control, 5000, 'welcome'));
        await assert.rejects(readMessage(channel, 5000));
      } finally {
        session.destroy();
      }
      assert.equal(target.connections(), before, 'nothing was forwarded');
      const failed = await s.cli.waitFor('handshake-failed');
      assert.equal(failed.code, 'ERR_TUNNEL_PROTOCOL');
      await s.cli.stop();
    });

    test(
      'before its hello, a client can hold no more than its control channel: a connection that opens another is dropped at once',
      { timeout: TIMEOUT },
      async () => {
        const s = await server(['--token-file', work.tokenFile]);
        const session = await rawClient(s.port);
        try {
          const control = session.dial();
          control.on('error', () => {});
          control.write('{'); // the start of a hello that never comes
          const started = performance.now();
          const failures = Array.from({ length: 20 }, () => {
            const channel = session.dial();
            channel.write(Buffer.alloc(200 * 1024));
            return new Promise<Error>((resolve) => channel.once('error', resolve));
          });
          for (const error of await Promise.all(failures)) {
            assert.ok(error instanceof ChannelResetError || error instanceof TransportClosedError, String(error));
          }
          await until(() => session.state === 'closed', 5000, 'the server to drop the connection');
          // Well before the hello's 10 s deadline: none of the 20 channels waited in the server's accept queue.
          assert.ok(performance.now() - started < 5000);
          const failed = await s.cli.waitFor('handshake-failed');
          assert.equal(failed.code, 'ERR_TUNNEL_PROTOCOL');
          assert.match(failed.message, /before the welcome/);
        } finally {
          session.destroy();
        }
        await s.cli.stop();
      },
    );

    test(
      'TLS and WebSocket listeners: silent connections count against the 256 handshakes (more are closed at once) and are closed 10 s after connecting',
      { timeout: TIMEOUT },
      async () => {
        const tlsServer = await server(['--token-file', work.tokenFile, '--tls-cert', certFile, '--tls-key', keyFile]);
        const wsServer = await server(['--token-file', work.tokenFile, '--ws', '/t']);
        /**
         * Opens `count` TCP connections that never send a byte, from 10 loopback addresses (30 each: within the
         * 32 a single address may hold); resolves to when each closed (ms after it opened).
         */
        const silent = async (port: number, count: number): Promise<Promise<number>[]> => {
          const sockets = await Promise.all(
            Array.from({ length: count }, async (_, i) => {
              const socket = net.connect({ port, host: '127.0.0.1', localAddress: `127.0.0.${1 + (i % 10)}` });
              socket.on('error', () => {});
              await new Promise((resolve) => socket.once('connect', resolve));
              return socket;
            }),
          );
          return sockets.map((socket) => {
            const opened = performance.now();
            return new Promise<number>((resolve) => socket.once('close', () => resolve(performance.now() - opened)));
          });
        };
        // Both at once: each waits its 10 s.
        const runs = await Promise.all([tlsServer, wsServer].map(async (s) => Promise.all(await silent(s.port, 300))));
        for (const [i, closedAfter] of runs.entries()) {
          const s = [tlsServer, wsServer][i]!;
          const early = closedAfter.filter((ms) => ms < 2000).length;
          assert.ok(early >= 300 - 256, `${early} of 300 closed at once (those beyond the 256 in handshake)`);
          const last = Math.max(...closedAfter);
          assert.ok(last < 12_000, `the last closed after ${Math.round(last)} ms`);
          assert.ok(
            s.cli.events.some(
              (e) => e.event === 'handshake-failed' && e.message.includes('handshakes already in progress'),
            ),
          );
        }
        await Promise.all([tlsServer.cli.stop(), wsServer.cli.stop()]);
      },
    );

    test(
      'one address holds at most 32 connections in their handshake: 260 silent ones from it do not lock out a client from another',
      { timeout: TIMEOUT },
      async () => {
        const s = await server(['--token-file', work.tokenFile, ...allowTarget()]);
        const opened: net.Socket[] = [];
        const closedAt: Promise<number>[] = [];
        try {
          for (let i = 0; i < 260; i++) {
            const socket = net.connect({ port: s.port, host: '127.0.0.1', localAddress: '127.0.0.2' });
            socket.on('error', () => {});
            await new Promise((resolve) => socket.once('connect', resolve));
            const started = performance.now();
            closedAt.push(new Promise((resolve) => socket.once('close', () => resolve(performance.now() - started))));
            opened.push(socket);
          }
          await s.cli.waitFor('handshake-failed');
          // While 127.0.0.2's silent connections hold their places, a client from 127.0.0.1 authenticates and forwards.
          const c = await client(s.port, ['--token-file', work.tokenFile, '-L', `0:127.0.0.1:${target.port}`]);
          const [port] = localPorts(c);
          assert.equal(await curl(`http://127.0.0.1:${port}/`), 'hello through the tunnel\n');
          await c.stop();
          const refusals = s.cli.events.filter(
            (e) =>
              e.event === 'handshake-failed' && e.message.includes('32 handshakes from 127.0.0.2 already in progress'),
          );
          assert.equal(refusals.length, 228, 'the 228 connections beyond 32 were refused');
          const closed = await Promise.race([
            Promise.all(closedAt.slice(32)),
            new Promise<null>((resolve) => setTimeout(() => resolve(null), 5000)),
          ]);
          assert.ok(closed !== null, 'the refused connections were closed at once');
        } finally {
          for (const socket of opened) socket.destroy();
        }
        await s.cli.stop();
      },
    );

    test(
      "a fixed -R port refused after a reconnect (the server still held the lost session's listener) is asked for again on the same session and served; a connection through the tunnel meanwhile is not disturbed",
      { timeout: TIMEOUT },
      async () => {
        // An echo target for a long-lived connection through -L (the HTTP target closes idle connections).
        const echo = await echoTarget();
        const echoPort = echo.port;
        const s = await server([
          '--token-file',
          work.tokenFile,
          '--allow-remote',
          '127.0.0.1:*',
          ...allowTarget(),
          '--allow',
          `127.0.0.1:${echoPort}`,
        ]);
        // A relay stands for a NAT or a load balancer: it can cut the client's leg of a connection while the
        // server's leg stays open and silent, so the server notices only by its keep-alive.
        const legs: { client: net.Socket; server: net.Socket }[] = [];
        const relay = net.createServer((clientLeg) => {
          const serverLeg = net.connect(s.port, '127.0.0.1');
          clientLeg.on('error', () => {});
          serverLeg.on('error', () => {});
          clientLeg.pipe(serverLeg);
          serverLeg.pipe(clientLeg);
          legs.push({ client: clientLeg, server: serverLeg });
        });
        await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
        let longLived: net.Socket | undefined;
        try {
          const remotePort = await freePort();
          const relayPort = (relay.address() as net.AddressInfo).port;
          const c = await client(relayPort, [
            '--token-file',
            work.tokenFile,
            '-R',
            `${remotePort}:127.0.0.1:${target.port}`,
            '-L',
            `0:127.0.0.1:${echoPort}`,
          ]);
          const [echoThrough] = localPorts(c);
          assert.equal(await curl(`http://127.0.0.1:${remotePort}/`), 'hello through the tunnel\n');
          const { client: clientLeg, server: serverLeg } = legs[0]!;
          clientLeg.unpipe(serverLeg);
          serverLeg.unpipe(clientLeg);
          serverLeg.pause();
          clientLeg.resetAndDestroy();
          const refused = await c.waitFor('forward-refused', 15_000);
          assert.equal(refused.code, 'ERR_TUNNEL_LISTEN');
          assert.match(refused.message, /asking again in \d/);
          // (The reconnect's session-up follows its refusal: the handshake reports what it was refused first.)
          await c.waitFor((e) => e.event === 'session-up' && Number(e.reconnects) > 0, 15_000);
          const sessionsUp = c.events.filter((e) => e.event === 'session-up').length;
          // A connection through the new session while the port is asked for again.
          longLived = net.connect(echoThrough!, '127.0.0.1');
          longLived.on('error', () => {});
          let echoed = '';
          let ended: string | undefined;
          longLived.on('data', (data: Buffer) => (echoed += data.toString()));
          longLived.on('close', (hadError) => (ended ??= hadError ? 'reset' : 'closed'));
          longLived.write('first ');
          await until(() => echoed === 'first ', 5000, 'the first echo');
          // The server's keep-alive (10 s, then 10 s for the answer) frees the port; a later request gets it.
          const relistened = await c.waitFor(
            (e) =>
              e.event === 'remote-listening' && e.port === remotePort && (e.time as string) > (refused.time as string),
            40_000,
          );
          assert.ok(relistened);
          assert.equal(await curl(`http://127.0.0.1:${remotePort}/`), 'hello through the tunnel\n');
          longLived.write('second');
          await until(() => echoed === 'first second', 5000, 'the second echo on the same connection');
          assert.equal(ended, undefined, 'the connection through -L was not cut while the port was asked for again');
          assert.equal(
            c.events.filter((e) => e.event === 'session-up').length,
            sessionsUp,
            'no new session was made to ask for the port',
          );
        } finally {
          longLived?.destroy();
          for (const { client: a, server: b } of legs) {
            a.destroy();
            b.destroy();
          }
          relay.close();
          echo.close();
        }
        await s.cli.stop();
      },
    );

    test(
      "a stopping client's -R port is closed on the server at its Go Away: while a connection in flight drains, new ones are refused, not taken and reset",
      { timeout: TIMEOUT },
      async () => {
        const echo = await echoTarget();
        const echoPort = echo.port;
        const s = await server(['--token-file', work.tokenFile, '--allow-remote', '127.0.0.1:*']);
        let inFlight: net.Socket | undefined;
        try {
          const remotePort = await freePort();
          const c = await client(s.port, ['--token-file', work.tokenFile, '-R', `${remotePort}:127.0.0.1:${echoPort}`]);
          await c.waitFor('remote-listening');
          inFlight = net.connect(remotePort, '127.0.0.1');
          inFlight.on('error', () => {});
          let echoed = '';
          inFlight.on('data', (data: Buffer) => (echoed += data.toString()));
          inFlight.write('held open');
          await until(() => echoed === 'held open', 5000, 'the echo through -R');
          const stopped = c.stop('SIGTERM', 20_000); // drains: the connection in flight keeps the session
          await c.waitFor('signal');
          await new Promise((resolve) => setTimeout(resolve, 500));
          const outcome = await new Promise<string>((resolve) => {
            const probe = net.connect(remotePort, '127.0.0.1');
            probe.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'));
            probe.once('connect', () => {
              probe.destroy();
              resolve('connected');
            });
          });
          assert.equal(outcome, 'ECONNREFUSED', "the -R port after the client's Go Away");
          inFlight.end();
          await stopped;
        } finally {
          inFlight?.destroy();
          echo.close();
        }
        await s.cli.stop();
      },
    );

    test(
      "a stop whose drain deadline passes counts every connection it cut, on the end that holds the target's socket too",
      { timeout: TIMEOUT },
      async () => {
        const echo = await echoTarget();
        const echoPort = echo.port;
        const s = await server([
          '--token-file',
          work.tokenFile,
          '--allow',
          `127.0.0.1:${echoPort}`,
          '--drain-timeout',
          '300',
        ]);
        const held: net.Socket[] = [];
        try {
          const c = await client(s.port, ['--token-file', work.tokenFile, '-L', `0:127.0.0.1:${echoPort}`]);
          const [port] = localPorts(c);
          for (let i = 0; i < 2; i++) {
            const socket = net.connect(port!, '127.0.0.1');
            socket.on('error', () => {});
            let echoed = '';
            socket.on('data', (data: Buffer) => (echoed += data.toString()));
            socket.write('unfinished');
            await until(() => echoed === 'unfinished', 5000, 'the echo through -L');
            held.push(socket);
          }
          await s.cli.stop('SIGTERM', 20_000);
          const stopped = s.cli.events.find((e) => e.event === 'stopped');
          assert.equal(stopped?.reset, 2, `the server's report: ${stopped?.message}`);
          await c.stop();
        } finally {
          for (const socket of held) socket.destroy();
          echo.close();
        }
      },
    );

    test(
      'connections that local programs reset at once, before or after their first bytes, are not reported as failures of the tunnel on either end',
      { timeout: TIMEOUT },
      async () => {
        const s = await server(['--token-file', work.tokenFile, ...allowTarget()]);
        const c = await client(s.port, ['--token-file', work.tokenFile, '-L', `0:127.0.0.1:${target.port}`]);
        const [port] = localPorts(c);
        await Promise.all(
          Array.from({ length: 40 }, async (_, i) => {
            const socket = net.connect(port!, '127.0.0.1');
            socket.on('error', () => {});
            await new Promise((resolve) => socket.once('connect', resolve));
            if (i % 2 === 0) socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
            socket.resetAndDestroy();
            await new Promise((resolve) => socket.once('close', resolve));
          }),
        );
        // Each end would have reported within a turn or two of the resets; a connection after them shows the
        // tunnel still serves.
        assert.equal(await curl(`http://127.0.0.1:${port}/`), 'hello through the tunnel\n');
        await new Promise((resolve) => setTimeout(resolve, 300));
        const failures = (cli: Cli): string[] =>
          cli.events.filter((e) => e.event === 'forward-failed').map((e) => e.message);
        assert.deepEqual(failures(c), [], 'the client reported');
        assert.deepEqual(failures(s.cli), [], 'the server reported');
        await c.stop();
        await s.cli.stop();
      },
    );

    test(
      "listen requests: a failed bind is not tried again (nor logged) more than once a second, and after the client's Go Away each is refused plainly",
      { timeout: TIMEOUT },
      async () => {
        const s = await server(['--token-file', work.tokenFile, '--allow-remote', '127.0.0.1:*']);
        const holder = net.createServer(); // holds a port, so that the welcome refuses it as in use
        await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
        const busy = (holder.address() as net.AddressInfo).port;
        const session = await rawClient(s.port);
        try {
          const control = session.dial();
          control.on('error', () => {});
          control.write(
            encode({
              type: 'hello',
              version: 1,
              token: work.token,
              forwards: [
                { kind: 'R', bind: '127.0.0.1', port: 0 },
                { kind: 'R', bind: '127.0.0.1', port: busy },
              ],
            }),
          );
          const welcome = await expectMessage(control, 5000, 'welcome');
          control.resume();
          assert.equal(welcome.listen, true);
          assert.equal(welcome.results[1]?.ok, false);
          const listen = async (index: number): Promise<string> => {
            const channel = session.dial();
            channel.on('error', () => {});
            channel.end(encode({ type: 'listen', index }));
            try {
              const answer = await readMessage(channel, 5000);
              channel.resume();
              return answer.type === 'error' ? answer.code : answer.type;
            } catch (error) {
              return `failed: ${(error as Error).message}`;
            }
          };
          const asked: string[] = [];
          for (let i = 0; i < 100; i++) asked.push(await listen(1)); // one after the other, within a second or so
          assert.ok(
            asked.every((answer) => answer === 'ERR_TUNNEL_LISTEN'),
            [...new Set(asked)].join(', '),
          );
          const failures = s.cli.events.filter((e) => e.event === 'listen-failed').length;
          assert.ok(failures <= 3, `${failures} listen-failed events for 101 attempts`);
          session.goAway();
          await new Promise((resolve) => setTimeout(resolve, 200));
          holder.close();
          assert.equal(await listen(0), 'ERR_TUNNEL_LISTEN', 'a port it had, after its Go Away');
          assert.equal(await listen(1), 'ERR_TUNNEL_LISTEN', 'a port now free, after its Go Away');
          assert.deepEqual(
            s.cli.events.filter((e) => e.event === 'forward-failed').map((e) => e.message),
            [],
          );
        } finally {
          holder.close();
          session.destroy();
        }
        await s.cli.stop();
      },
    );

    test(
      'a client that opens its control channel late and then says nothing is closed 10 s after it connected, not later',
      { timeout: TIMEOUT },
      async () => {
        const s = await server(['--token-file', work.tokenFile]);
        const session = await rawClient(s.port);
        const connectedAt = performance.now();
        try {
          await new Promise((resolve) => setTimeout(resolve, 6000));
          const control = session.dial();
          control.on('error', () => {});
          control.resume();
          const failed = await s.cli.waitFor('handshake-failed');
          assert.match(failed.message, /no message in time/);
          await session.closed.catch(() => {});
          const closedAfter = performance.now() - connectedAt;
          // One 10 s deadline for the channel and the hello: before, the hello had 10 s of its own (16 s here).
          assert.ok(closedAfter < 12_000, `closed ${Math.round(closedAfter)} ms after connecting`);
        } finally {
          session.destroy();
        }
        await s.cli.stop();
      },
    );

    test('a -L port in use is a clear ERR_TUNNEL_LISTEN error', { timeout: TIMEOUT }, async () => {
      const holder = net.createServer();
      await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
      try {
        const busy = (holder.address() as net.AddressInfo).port;
        const c = spawnClient(1, ['--token-file', work.tokenFile, '-L', `${busy}:127.0.0.1:${target.port}`]);
        const fatal = await c.waitFor('fatal');
        assert.equal(fatal.code, 'ERR_TUNNEL_LISTEN');
        assert.match(fatal.message, /address already in use/);
        assert.equal(await c.exited, 1);
      } finally {
        holder.close();
      }
    });

    test(
      'a -R port in use on the server and a --listen port in use are clear ERR_TUNNEL_LISTEN errors on the end concerned',
      { timeout: TIMEOUT },
      async () => {
        const holder = net.createServer();
        await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
        try {
          const busy = (holder.address() as net.AddressInfo).port;
          const taken = new Cli(['server', '--listen', `127.0.0.1:${busy}`, '--token-file', work.tokenFile]);
          processes.push(taken);
          const serverFatal = await taken.waitFor('fatal');
          assert.equal(serverFatal.code, 'ERR_TUNNEL_LISTEN');
          assert.match(
            serverFatal.message,
            new RegExp(`cannot listen on 127\\.0\\.0\\.1:${busy}: address already in use`),
          );
          assert.equal(await taken.exited, 1);

          const s = await server(['--token-file', work.tokenFile, '--allow-remote', '127.0.0.1:*']);
          const c = spawnClient(s.port, ['--token-file', work.tokenFile, '-R', `${busy}:127.0.0.1:${target.port}`]);
          const fatal = await c.waitFor('fatal');
          assert.equal(fatal.code, 'ERR_TUNNEL_LISTEN');
          assert.match(fatal.message, /address already in use/);
          assert.equal(await c.exited, 1);
          const listenFailed = await s.cli.waitFor('listen-failed');
          assert.match(listenFailed.message, /address already in use/);
          assert.deepEqual(
            [listenFailed.code, listenFailed.bind, listenFailed.port],
            ['ERR_TUNNEL_LISTEN', '127.0.0.1', busy],
            'the fields docs/tunnel.md lists',
          );
          assert.match(String(listenFailed.forward), /^-R 127\.0\.0\.1:\d+ of /);
          await s.cli.stop();
        } finally {
          holder.close();
        }
      },
    );

    test('with no session, a -L connection waits --connect-wait, then is reset', { timeout: TIMEOUT }, async () => {
      const closed = await refusedPort();
      const c = spawnClient(closed, [
        '--token-file',
        work.tokenFile,
        '--connect-wait',
        '300',
        '-L',
        `0:127.0.0.1:${target.port}`,
      ]);
      const port = (await c.waitFor('local-listening')).port!;
      const started = performance.now();
      const socket = net.connect(port, '127.0.0.1');
      const outcome = await new Promise<string>((resolve) => {
        socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
        socket.once('close', () => resolve('closed without error'));
      });
      assert.equal(outcome, 'ECONNRESET');
      assert.ok(performance.now() - started >= 250, 'it waited for the session first');
      const failed = await c.waitFor('forward-failed');
      assert.match(failed.message, /no session .* within 300 ms; connection reset/);
      assert.equal(failed.code, 'ERR_TUNNEL_UNREACHABLE');
      assert.match(String(failed.forward), /^-L /);
      await c.stop();
    });

    test(
      'stopping the client resets a -L connection waiting for a session, saying it is shutting down, before stopped',
      { timeout: TIMEOUT },
      async () => {
        const closed = await refusedPort();
        const c = spawnClient(closed, [
          '--token-file',
          work.tokenFile,
          '--connect-wait',
          '20000',
          '-L',
          `0:127.0.0.1:${target.port}`,
        ]);
        const port = (await c.waitFor('local-listening')).port!;
        const socket = net.connect(port, '127.0.0.1');
        const outcome = new Promise<string>((resolve) => {
          socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
          socket.once('close', () => resolve('closed without error'));
        });
        await once(socket, 'connect');
        await c.waitFor('retry'); // the connection waits while the attempts fail
        assert.equal(await c.stop('SIGINT'), 0);
        assert.equal(await outcome, 'ECONNRESET');
        const failed = c.events.findIndex((e) => e.event === 'forward-failed');
        assert.ok(failed >= 0, c.describe());
        assert.match(
          c.events[failed]!.message,
          /the client is shutting down before it had a session; connection reset/,
        );
        assert.ok(
          failed < c.events.findIndex((e) => e.event === 'stopped'),
          `forward-failed before stopped:\n${c.describe()}`,
        );
      },
    );

    test(
      'an unreachable server is reported with each retry, and --retries bounds them',
      { timeout: TIMEOUT },
      async () => {
        const closed = await refusedPort();
        const c = spawnClient(closed, [
          '--token-file',
          work.tokenFile,
          '--retries',
          '2',
          '-L',
          `0:127.0.0.1:${target.port}`,
        ]);
        const fatal = await c.waitFor('fatal');
        assert.equal(fatal.code, 'ERR_TUNNEL_UNREACHABLE');
        assert.match(fatal.message, /connection refused; giving up after 3 failed attempts in a row \(--retries 2\)/);
        assert.equal(c.events.filter((e) => e.event === 'retry').length, 2);
        assert.equal(await c.exited, 1);
      },
    );

    /** An HTTP server whose every response sends its first half at once and its second `ms` later. */
    async function slowHttpTarget(ms: number): Promise<import('node:http').Server> {
      const http = await import('node:http');
      const target = http.createServer((_request, response) => {
        response.write('first half, ');
        setTimeout(() => response.end('second half\n'), ms);
      });
      await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
      return target;
    }

    test(
      'SIGTERM on the server lets a request in flight finish (Go Away, drain), then exits 0',
      { timeout: TIMEOUT },
      async () => {
        const slow = await slowHttpTarget(700);
        try {
          const slowPort = (slow.address() as net.AddressInfo).port;
          const s = await server(['--token-file', work.tokenFile, '--allow', `127.0.0.1:${slowPort}`]);
          const c = await client(s.port, [
            '--token-file',
            work.tokenFile,
            '--retries',
            '0',
            '-L',
            `0:127.0.0.1:${slowPort}`,
          ]);
          const request = curl(`http://127.0.0.1:${localPorts(c)[0]}/`);
          await new Promise((resolve) => setTimeout(resolve, 300));
          const exit = s.cli.stop('SIGTERM');
          assert.equal(await request, 'first half, second half\n');
          assert.equal(await exit, 0);
          assert.ok(s.cli.events.some((e) => e.event === 'stopped'));
          await c.stop();
        } finally {
          slow.close();
        }
      },
    );

    test(
      "the server's --drain-timeout holds after its Go Away, not the client's: a request longer than the client's drain finishes",
      { timeout: TIMEOUT },
      async () => {
        const slow = await slowHttpTarget(1500);
        try {
          const slowPort = (slow.address() as net.AddressInfo).port;
          const s = await server([
            '--token-file',
            work.tokenFile,
            '--allow',
            `127.0.0.1:${slowPort}`,
            '--drain-timeout',
            '10000',
          ]);
          // The client's own drain (for its own stop) is shorter than the request.
          const c = await client(s.port, [
            '--token-file',
            work.tokenFile,
            '--drain-timeout',
            '300',
            '-L',
            `0:127.0.0.1:${slowPort}`,
          ]);
          const request = curl(`http://127.0.0.1:${localPorts(c)[0]}/`);
          await new Promise((resolve) => setTimeout(resolve, 300));
          const exit = s.cli.stop('SIGTERM', 20_000);
          assert.equal(await request, 'first half, second half\n');
          assert.equal(await exit, 0);
          const stopped = s.cli.events.find((e) => e.event === 'stopped') as { reset?: number } | undefined;
          assert.equal(stopped?.reset, 0, 'nothing left for the drain to reset');
          await c.stop();
        } finally {
          slow.close();
        }
      },
    );

    /**
     * An HTTP target that announces a 1 TB body and sends it in 64 KiB chunks for as long as the connection
     * takes them (at most 30 s): a reader slower than that leaves data in every buffer along the way.
     */
    async function streamingTarget(): Promise<{ port: number; close(): void }> {
      const sockets = new Set<net.Socket>();
      const chunk = Buffer.alloc(64 * 1024, 'x');
      const streamer = net.createServer((socket) => {
        sockets.add(socket);
        socket.on('error', () => {});
        socket.write('HTTP/1.1 200 OK\r\ncontent-length: 1000000000000\r\n\r\n');
        const stopAt = performance.now() + 30_000;
        const pump = (): void => {
          while (!socket.destroyed && performance.now() < stopAt) if (!socket.write(chunk)) return;
        };
        socket.on('drain', pump);
        pump();
      });
      await new Promise<void>((resolve) => streamer.listen(0, '127.0.0.1', resolve));
      return {
        port: (streamer.address() as net.AddressInfo).port,
        close() {
          for (const socket of sockets) socket.destroy();
          streamer.close();
        },
      };
    }

    /**
     * A curl that reads `url` at 2 MB/s; `done` resolves to its exit code: 56 when the connection is reset,
     * 18 when it ends with a FIN before the announced length (a Node socket cannot tell: libuv reports a
     * reset that follows unread data as an end).
     */
    function slowCurl(url: string): { done: Promise<number> } {
      return {
        done: run('curl', ['-sS', '--limit-rate', '2M', '--max-time', '20', '-o', '/dev/null', url], 30_000).then(
          () => 0,
          (error: unknown) => (error as { code: number }).code,
        ),
      };
    }

    test(
      'a forwarded connection that the drain leaves unfinished is reset at shutdown, not ended with a FIN: -L, the client stopped by SIGTERM, or by SIGHUP (its terminal gone)',
      { timeout: TIMEOUT },
      async () => {
        const streamer = await streamingTarget();
        try {
          for (const signal of ['SIGTERM', 'SIGHUP'] as const) {
            const s = await server(['--token-file', work.tokenFile, '--allow', `127.0.0.1:${streamer.port}`]);
            const c = await client(s.port, [
              '--token-file',
              work.tokenFile,
              '--drain-timeout',
              '300',
              '-L',
              `0:127.0.0.1:${streamer.port}`,
            ]);
            const reader = slowCurl(`http://127.0.0.1:${localPorts(c)[0]!}/`);
            await new Promise((resolve) => setTimeout(resolve, 1000)); // the buffers along the way fill
            // (SIGHUP's default, before: the process died with status 129, its connections ended with a FIN.)
            assert.equal(await c.stop(signal), 0, signal);
            assert.equal(await reader.done, 56, `${signal}: curl's exit code (18: a FIN); ${c.describe()}`);
            const stopped = c.events.find((e) => e.event === 'stopped')!;
            assert.equal(stopped.reset, 1, c.describe());
            await s.cli.stop();
          }
        } finally {
          streamer.close();
        }
      },
    );

    test(
      'a forwarded connection that the drain leaves unfinished is reset at shutdown, not ended with a FIN: -R, the server stopped, and on a forced exit',
      { timeout: TIMEOUT },
      async () => {
        const streamer = await streamingTarget();
        try {
          for (const forced of [false, true]) {
            const s = await server([
              '--token-file',
              work.tokenFile,
              '--allow-remote',
              '127.0.0.1:*',
              '--drain-timeout',
              forced ? '30000' : '300',
            ]);
            const c = await client(s.port, ['--token-file', work.tokenFile, '-R', `0:127.0.0.1:${streamer.port}`]);
            const remote = await c.waitFor('remote-listening');
            const reader = slowCurl(`http://127.0.0.1:${remote.port!}/`);
            await new Promise((resolve) => setTimeout(resolve, 1000));
            if (forced) {
              s.cli.child.kill('SIGTERM');
              await s.cli.waitFor('stopping');
              await new Promise((resolve) => setTimeout(resolve, 700)); // a second signal, not a repeat of the first
              s.cli.child.kill('SIGTERM');
              assert.equal(await s.cli.exited, 143);
            } else {
              assert.equal(await s.cli.stop('SIGTERM'), 0);
            }
            assert.equal(await reader.done, 56, `curl's exit code (18: a FIN), forced exit: ${forced}`);
            await c.stop();
          }
        } finally {
          streamer.close();
        }
      },
    );

    test(
      'a second SIGTERM exits at once (status 143, 128 + SIGTERM) without waiting for the drain; the same signal repeated within 0.5 s is not a second',
      { timeout: TIMEOUT },
      async () => {
        const http = await import('node:http');
        const hanging = http.createServer((_request, response) => {
          response.write('never finished');
        });
        await new Promise<void>((resolve) => hanging.listen(0, '127.0.0.1', resolve));
        try {
          const hangingPort = (hanging.address() as net.AddressInfo).port;
          const s = await server([
            '--token-file',
            work.tokenFile,
            '--allow',
            `127.0.0.1:${hangingPort}`,
            '--drain-timeout',
            '30000',
          ]);
          const c = await client(s.port, ['--token-file', work.tokenFile, '-L', `0:127.0.0.1:${hangingPort}`]);
          const request = curlFails(`http://127.0.0.1:${localPorts(c)[0]}/`, 25);
          await new Promise((resolve) => setTimeout(resolve, 300));
          const started = performance.now();
          s.cli.child.kill('SIGTERM');
          await s.cli.waitFor('stopping');
          // As GNU timeout delivers it (to the child, then to its process group): one request, not two.
          s.cli.child.kill('SIGTERM');
          await new Promise((resolve) => setTimeout(resolve, 700));
          assert.equal(s.cli.child.exitCode, null, 'a repeat at once is not a second signal');
          assert.equal(
            s.cli.events.some((e) => e.event === 'forced'),
            false,
          );
          s.cli.child.kill('SIGTERM');
          assert.equal(await s.cli.exited, 143);
          assert.ok(performance.now() - started < 10_000, 'it did not wait for the 30 s drain');
          await request;
          await c.stop();
        } finally {
          hanging.closeAllConnections();
          hanging.close();
        }
      },
    );
  });
}
