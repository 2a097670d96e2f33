/**
 * The tunnel under real programs that no one here wrote (Debian's redis-server, redis-benchmark, iperf3,
 * curl), under load (1,000 connections at once through one session) and across a server crash and restart.
 * Everything on 127.0.0.1 with ports from the OS.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import {
  Cli,
  curl,
  echoTarget,
  freePort,
  httpTarget,
  localPorts,
  requirePrograms,
  run,
  startClient,
  startProgram,
  startServer,
  stopProgram,
  workDir,
} from './harness.js';

const TIMEOUT = 120_000;

/** Sends `message` on a new connection to `port`, half-closes, and resolves to everything read back. */
function exchange(port: number, message: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no echo within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.once('end', () => {
      clearTimeout(timer);
      socket.end();
      resolve(Buffer.concat(chunks).toString('utf8'));
    });
    socket.end(message);
  });
}

const haveRedis = requirePrograms(
  'muxwire tunnel with redis-benchmark',
  ['redis-server', 'redis-benchmark'],
  'redis-server redis-tools',
);
const haveIperf = requirePrograms('muxwire tunnel with iperf3', ['iperf3'], 'iperf3');
const haveCurl = requirePrograms('muxwire tunnel across a server restart', ['curl'], 'curl');

describe('muxwire tunnel with real programs', { timeout: TIMEOUT * 6 }, () => {
  const work = workDir();
  const processes: Cli[] = [];
  after(async () => {
    await Promise.all(processes.map((p) => p.stop('SIGKILL')));
    work.remove();
  });

  async function tunnel(
    targetPort: number,
    serverArgs: string[] = [],
    clientArgs: string[] = [],
  ): Promise<{ server: Cli; client: Cli; localPort: number; serverPort: number }> {
    const s = await startServer(['--token-file', work.tokenFile, '--allow', `127.0.0.1:${targetPort}`, ...serverArgs]);
    processes.push(s.cli);
    const client = await startClient(s.port, [
      '--token-file',
      work.tokenFile,
      '-L',
      `0:127.0.0.1:${targetPort}`,
      ...clientArgs,
    ]);
    processes.push(client);
    return { server: s.cli, client, localPort: localPorts(client)[0]!, serverPort: s.port };
  }

  if (haveRedis) {
    describe('redis', () => {
      let redis: ChildProcess | undefined;
      let redisPort = 0;
      before(async () => {
        redisPort = await freePort();
        redis = await startProgram(
          'redis-server',
          [
            '--port',
            String(redisPort),
            '--bind',
            '127.0.0.1',
            '--save',
            '',
            '--appendonly',
            'no',
            '--protected-mode',
            'no',
          ],
          redisPort,
        );
      });
      after(() => stopProgram(redis));

      test(
        'redis-benchmark with 50 clients through -L gets every reply from redis-server',
        { timeout: TIMEOUT },
        async () => {
          const t = await tunnel(redisPort);
          const { stdout } = await run(
            'redis-benchmark',
            ['-h', '127.0.0.1', '-p', String(t.localPort), '-c', '50', '-n', '20000', '-t', 'set,get', '--csv'],
            90_000,
          );
          const rows = stdout
            .trim()
            .split('\n')
            .filter((line) => /^"(SET|GET)"/.test(line));
          assert.equal(rows.length, 2, `redis-benchmark printed:\n${stdout}`);
          for (const row of rows) assert.ok(Number((JSON.parse(`[${row}]`) as unknown[])[1]) > 0, row);
          // The keys it set through the tunnel are in redis: read one back directly.
          const { stdout: value } = await run('redis-cli', ['-p', String(redisPort), 'exists', 'key:__rand_int__']);
          assert.equal(value.trim(), '1');
          await t.client.stop();
          await t.server.stop();
        },
      );
    });
  }

  if (haveIperf) {
    test('iperf3 through -L: data both ways (normal and --reverse) arrives in full', { timeout: TIMEOUT }, async () => {
      const iperfPort = await freePort();
      const iperf = await startProgram('iperf3', ['-s', '-B', '127.0.0.1', '-p', String(iperfPort)], iperfPort);
      try {
        const t = await tunnel(iperfPort);
        for (const reverse of [false, true]) {
          const { stdout } = await run(
            'iperf3',
            ['-c', '127.0.0.1', '-p', String(t.localPort), '-t', '2', '-J', ...(reverse ? ['-R'] : [])],
            60_000,
          );
          const report = JSON.parse(stdout) as {
            end: { sum_sent: { bytes: number }; sum_received: { bytes: number; bits_per_second: number } };
          };
          assert.ok(report.end.sum_received.bytes > 1e6, `received ${report.end.sum_received.bytes} bytes`);
          assert.ok(report.end.sum_received.bits_per_second > 0);
        }
        await t.client.stop();
        await t.server.stop();
      } finally {
        await stopProgram(iperf);
      }
    });
  }

  test(
    '1,000 concurrent connections through one tunnel each get their own bytes back',
    { timeout: TIMEOUT },
    async () => {
      const echo = await echoTarget();
      try {
        const t = await tunnel(echo.port);
        const count = 1000;
        const replies = await Promise.all(
          Array.from({ length: count }, (_, i) => exchange(t.localPort, `connection ${i} `.repeat(50), 60_000)),
        );
        for (const [i, reply] of replies.entries()) assert.equal(reply, `connection ${i} `.repeat(50));
        assert.equal(t.server.events.filter((e) => e.event === 'client-up').length, 1, 'all over one session');
        await t.client.stop();
        await t.server.stop();
      } finally {
        echo.server.close();
      }
    },
  );

  if (haveCurl) {
    test(
      'server killed and restarted: in-flight connections are reset, -L stays up, new connections work within 2 s, -R comes back',
      { timeout: TIMEOUT },
      async () => {
        const echo = await echoTarget();
        const web = await httpTarget();
        try {
          const first = await startServer([
            '--token-file',
            work.tokenFile,
            '--allow',
            `127.0.0.1:${echo.port}`,
            '--allow',
            `127.0.0.1:${web.port}`,
            '--allow-remote',
            '127.0.0.1:*',
          ]);
          processes.push(first.cli);
          const client = await startClient(first.port, [
            '--token-file',
            work.tokenFile,
            '-L',
            `0:127.0.0.1:${echo.port}`,
            '-L',
            `0:127.0.0.1:${web.port}`,
            '-R',
            `0:127.0.0.1:${web.port}`,
          ]);
          processes.push(client);
          const remoteBefore = await client.waitFor('remote-listening');
          assert.equal(await curl(`http://127.0.0.1:${remoteBefore.port}/`), 'hello through the tunnel\n');
          const [echoPort, webPort] = localPorts(client);
          assert.equal(await curl(`http://127.0.0.1:${webPort}/`), 'hello through the tunnel\n');

          // A connection in flight: it has exchanged data and stays open.
          const inFlight = net.connect(echoPort!, '127.0.0.1');
          inFlight.write('ping');
          await once(inFlight, 'data');
          const broken = new Promise<string>((resolve) => {
            inFlight.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
            inFlight.once('close', () => resolve('closed'));
          });

          await first.cli.stop('SIGKILL');
          assert.equal(await broken, 'ECONNRESET', 'the in-flight connection was reset');
          await client.waitFor('session-down');

          // The -L listener is still up: a connection is accepted and waits for the session.
          const waiting = net.connect(webPort!, '127.0.0.1');
          waiting.on('error', () => {});
          await once(waiting, 'connect');
          waiting.destroy();

          const second = await startServer([
            '--listen',
            `127.0.0.1:${first.port}`,
            '--token-file',
            work.tokenFile,
            '--allow',
            `127.0.0.1:${echo.port}`,
            '--allow',
            `127.0.0.1:${web.port}`,
            '--allow-remote',
            '127.0.0.1:*',
          ]);
          processes.push(second.cli);
          const started = performance.now();
          assert.equal(await curl(`http://127.0.0.1:${webPort}/`), 'hello through the tunnel\n');
          const elapsed = performance.now() - started;
          assert.ok(elapsed < 2000, `the first connection after the restart took ${Math.round(elapsed)} ms`);
          const up = await client.waitFor((e) => e.event === 'session-up' && e.reconnects === 1);
          assert.match(up.message, /reconnect 1/);
          assert.equal(await exchange(echoPort!, 'after the restart', 10_000), 'after the restart');
          // The -R listener was opened again by the new server (port 0 in the spec: a new port, reported again).
          const remoteAfter = await client.waitFor((e) => e.event === 'remote-listening' && e !== remoteBefore);
          assert.equal(await curl(`http://127.0.0.1:${remoteAfter.port}/`), 'hello through the tunnel\n');
          await client.stop();
          await second.cli.stop();
        } finally {
          echo.server.close();
          for (const socket of echo.sockets) socket.destroy();
          await web.close();
        }
      },
    );
  }
});
