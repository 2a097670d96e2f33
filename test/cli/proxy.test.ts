/**
 * The client reaching its server through an HTTP proxy (`--proxy`, CONNECT), with Debian's tinyproxy as
 * the proxy: over TCP and over WebSocket with TLS, curl through -L; a proxy that refuses is a clear error.
 * And with proxies of the test's own: a wss:// URL with an IP address through a relaying proxy, and through
 * one that answers TLS itself with a certificate for its own name (the client must refuse it).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { WebSocketServer } from 'ws';
import { refusedPort } from '../helpers.js';
import { selfSignedCertificate } from '../support/self-signed.js';
import {
  Cli,
  curl,
  freePort,
  httpTarget,
  localPorts,
  requirePrograms,
  startClient,
  startServer,
  workDir,
} from './harness.js';

const TIMEOUT = 60_000;

if (requirePrograms('muxwire tunnel through an HTTP proxy', ['curl', 'tinyproxy'], 'curl tinyproxy')) {
  describe('muxwire tunnel through an HTTP proxy', { timeout: TIMEOUT * 4 }, () => {
    const work = workDir();
    const tlsMaterial = selfSignedCertificate('localhost');
    const processes: Cli[] = [];
    let proxy: ChildProcess | undefined;
    let proxyPort = 0;
    let proxyLog = '';
    let target: Awaited<ReturnType<typeof httpTarget>>;

    before(async () => {
      target = await httpTarget();
      proxyPort = await freePort();
      // No ConnectPort line: CONNECT to any port (tinyproxy's packaged config allows only 443 and 563).
      const config = work.write(
        'tinyproxy.conf',
        [
          `Port ${proxyPort}`,
          'Listen 127.0.0.1',
          'Timeout 60',
          'Allow 127.0.0.1',
          'MaxClients 100',
          'LogLevel Connect',
          '',
        ].join('\n'),
      );
      proxy = spawn('tinyproxy', ['-d', '-c', config], { stdio: ['ignore', 'pipe', 'pipe'] });
      proxy.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
        proxyLog += chunk;
      });
      proxy.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
        proxyLog += chunk;
      });
      const deadline = performance.now() + 10_000;
      for (;;) {
        const up = await new Promise<boolean>((resolve) => {
          const socket = net.connect(proxyPort, '127.0.0.1');
          socket.once('connect', () => {
            socket.destroy();
            resolve(true);
          });
          socket.once('error', () => resolve(false));
        });
        if (up) break;
        assert.ok(performance.now() < deadline, `tinyproxy listens (its log: ${proxyLog})`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    });
    after(async () => {
      await Promise.all(processes.map((p) => p.stop('SIGKILL')));
      if (proxy?.exitCode === null) {
        proxy.kill('SIGKILL');
        await once(proxy, 'exit');
      }
      await target.close();
      work.remove();
    });

    test(
      "over TCP: the client connects through the proxy's CONNECT, and curl gets through -L",
      { timeout: TIMEOUT },
      async () => {
        const s = await startServer(['--token-file', work.tokenFile, '--allow', `127.0.0.1:${target.port}`]);
        processes.push(s.cli);
        const c = await startClient(s.port, [
          '--token-file',
          work.tokenFile,
          '--proxy',
          `http://127.0.0.1:${proxyPort}`,
          '-L',
          `0:127.0.0.1:${target.port}`,
        ]);
        processes.push(c);
        assert.equal(await curl(`http://127.0.0.1:${localPorts(c)[0]}/`), 'hello through the tunnel\n');
        assert.match(proxyLog, new RegExp(`CONNECT 127\\.0\\.0\\.1:${s.port}`), 'the session went through the proxy');
        await c.stop();
        await s.cli.stop();
      },
    );

    test('over WebSocket with TLS (wss://) through the proxy: curl gets through -L', { timeout: TIMEOUT }, async () => {
      const cert = work.write('cert.pem', tlsMaterial.cert);
      const key = work.write('key.pem', tlsMaterial.key, 0o600);
      const s = await startServer([
        '--token-file',
        work.tokenFile,
        '--ws',
        '/t',
        '--tls-cert',
        cert,
        '--tls-key',
        key,
        '--allow',
        `127.0.0.1:${target.port}`,
      ]);
      processes.push(s.cli);
      const c = await startClient(0, [
        '--token-file',
        work.tokenFile,
        '--ws',
        `wss://localhost:${s.port}/t`,
        '--ca',
        cert,
        '--proxy',
        `http://127.0.0.1:${proxyPort}`,
        '-L',
        `0:127.0.0.1:${target.port}`,
      ]);
      processes.push(c);
      assert.equal(await curl(`http://127.0.0.1:${localPorts(c)[0]}/`), 'hello through the tunnel\n');
      assert.match(proxyLog, new RegExp(`CONNECT localhost:${s.port}`));
      await c.stop();
      await s.cli.stop();
    });

    test(
      'a proxy that cannot reach the server answers an error status, reported as ERR_TUNNEL_UNREACHABLE',
      { timeout: TIMEOUT },
      async () => {
        const closed = await refusedPort();
        const c = new Cli([
          'client',
          '--server',
          `127.0.0.1:${closed}`,
          '--proxy',
          `http://127.0.0.1:${proxyPort}`,
          '--retries',
          '0',
          '--token-file',
          work.tokenFile,
          '-L',
          `0:127.0.0.1:${target.port}`,
        ]);
        processes.push(c);
        const fatal = await c.waitFor('fatal');
        assert.equal(fatal.code, 'ERR_TUNNEL_UNREACHABLE');
        assert.match(
          fatal.message,
          new RegExp(`the proxy 127\\.0\\.0\\.1:${proxyPort} refused CONNECT 127\\.0\\.0\\.1:${closed}: HTTP 5\\d\\d`),
        );
        assert.equal(await c.exited, 1);
      },
    );
  });
}

describe("wss:// through a proxy: the certificate is checked against the URL's host, not the proxy's", () => {
  const work = workDir();
  // For DNS:localhost, 127.0.0.1 and ::1 (test/support/self-signed.ts).
  const material = selfSignedCertificate('localhost');
  const processes: Cli[] = [];
  after(async () => {
    await Promise.all(processes.map((p) => p.stop('SIGKILL')));
    work.remove();
  });

  /** An HTTP proxy on `localhost` whose CONNECT handler is `onConnect`; resolves to its port. */
  async function proxyServer(
    onConnect: (request: http.IncomingMessage, socket: net.Socket) => void,
  ): Promise<{ port: number; close(): void }> {
    const proxy = http.createServer();
    const sockets = new Set<net.Socket>();
    proxy.on('connect', (request: http.IncomingMessage, socket: net.Socket) => {
      sockets.add(socket);
      socket.on('error', () => {});
      socket.on('close', () => sockets.delete(socket));
      onConnect(request, socket);
    });
    // The client resolves the proxy's name as this does: the same address.
    await new Promise<void>((resolve) => proxy.listen(0, 'localhost', resolve));
    return {
      port: (proxy.address() as net.AddressInfo).port,
      close() {
        for (const socket of sockets) socket.destroy();
        proxy.close();
      },
    };
  }

  test(
    'a proxy that answers TLS itself with a certificate for its own name (trusted by --ca) is refused for wss://IP, and never sees the token',
    { timeout: TIMEOUT },
    async () => {
      const ca = work.write('ca.pem', material.cert);
      let seen = '';
      const impostor = https.createServer({ cert: material.cert, key: material.key });
      impostor.on('tlsClientError', () => {});
      new WebSocketServer({ server: impostor }).on('connection', (ws) => {
        ws.on('message', (data: Buffer) => (seen += data.toString('latin1')));
      });
      const proxy = await proxyServer((_request, socket) => {
        socket.write('HTTP/1.1 200 Connection established\r\n\r\n');
        impostor.emit('connection', socket);
      });
      try {
        // 127.0.0.2 is not in the certificate; the proxy's name, localhost, is.
        const c = new Cli([
          'client',
          '--ws',
          'wss://127.0.0.2:1/t',
          '--proxy',
          `http://localhost:${proxy.port}`,
          '--ca',
          ca,
          '--retries',
          '0',
          '--token-file',
          work.tokenFile,
          '-L',
          '0:127.0.0.1:9',
        ]);
        processes.push(c);
        const fatal = await c.waitFor('fatal', 20_000);
        assert.equal(fatal.code, 'ERR_TUNNEL_CERT', c.describe());
        assert.match(fatal.message, /IP: 127\.0\.0\.2 is not in the cert's list/);
        assert.equal(await c.exited, 1);
        assert.ok(!seen.includes(work.token), 'the token did not reach the proxy');
      } finally {
        proxy.close();
      }
    },
  );

  test(
    'wss://127.0.0.1 through a relaying proxy connects (the certificate names 127.0.0.1) and carries -L',
    { timeout: TIMEOUT },
    async () => {
      const cert = work.write('cert.pem', material.cert);
      const key = work.write('key.pem', material.key, 0o600);
      const echo = net.createServer((socket) => {
        socket.on('error', () => {});
        socket.pipe(socket);
      });
      await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
      const echoPort = (echo.address() as net.AddressInfo).port;
      const relay = await proxyServer((request, socket) => {
        const [host, port] = [request.url!.slice(0, request.url!.lastIndexOf(':')), request.url!.split(':').pop()];
        const upstream = net.connect(Number(port), host);
        upstream.on('error', () => socket.destroy());
        upstream.once('connect', () => {
          socket.write('HTTP/1.1 200 Connection established\r\n\r\n');
          socket.pipe(upstream);
          upstream.pipe(socket);
        });
      });
      try {
        const s = await startServer([
          '--token-file',
          work.tokenFile,
          '--ws',
          '/t',
          '--tls-cert',
          cert,
          '--tls-key',
          key,
          '--allow',
          `127.0.0.1:${echoPort}`,
        ]);
        processes.push(s.cli);
        const c = await startClient(0, [
          '--token-file',
          work.tokenFile,
          '--ws',
          `wss://127.0.0.1:${s.port}/t`,
          '--ca',
          cert,
          '--proxy',
          `http://localhost:${relay.port}`,
          '-L',
          `0:127.0.0.1:${echoPort}`,
        ]);
        processes.push(c);
        const socket = net.connect(localPorts(c)[0]!, '127.0.0.1');
        socket.write('through the proxy');
        const [reply] = (await once(socket, 'data')) as [Buffer];
        assert.equal(reply.toString(), 'through the proxy');
        socket.destroy();
        await c.stop();
        await s.cli.stop();
      } finally {
        relay.close();
        echo.close();
      }
    },
  );
});
