/**
 * The client reaching its server through an HTTP proxy (`--proxy`, CONNECT), with Debian's tinyproxy as
 * the proxy: over TCP and over WebSocket with TLS, curl through -L; a proxy that refuses is a clear error.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
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
      const key = work.write('key.pem', tlsMaterial.key);
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
        const closed = await freePort();
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
