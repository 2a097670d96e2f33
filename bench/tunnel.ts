// The `muxwire` tunnel command measured against what users would pick instead: a direct connection and
// `ssh -L` (Debian's OpenSSH, sshd run here as root on a loopback port with keys made for the run), and the
// tunnel over TCP, TLS and WebSocket. Three figures, each through every path in turn: iperf3 throughput (one
// stream), redis-benchmark GET requests/s with 50 clients, and connections opened per second (each connects,
// sends a Redis PING, reads the PONG and closes). One run, on 127.0.0.1.
//
//   npm run bench:tunnel                 # prints the table
//   npm run bench:tunnel -- --report     # and writes it into docs/benchmarks.md (between the tunnel markers)
//   npm run bench:tunnel -- --seconds 10 --rounds 5 --paths direct,ssh,muxwire-tcp
//   MUXWIRE_BENCH_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" npm run bench:tunnel -- --paths muxwire-tcp --figures conns
//
// Needs iperf3, redis-server, redis-tools, openssh-server and openssh-client (.ci/run installs them), and
// root for sshd. Not part of `npm test`.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { TUNNEL_END, TUNNEL_START, withTunnelSection } from './tunnel-section.js';

const CLI = fileURLToPath(new URL('../src/cli.js', import.meta.url));
const DOC = fileURLToPath(new URL('../../docs/benchmarks.md', import.meta.url));

const PATHS = ['direct', 'ssh', 'muxwire-tcp', 'muxwire-tls', 'muxwire-ws'] as const;
type PathName = typeof PATHS[number];

interface Figures {
  iperfGbps: number;
  redisRps: number;
  connsPerSecond: number;
}

/** A forwarding path under test: the local ports that reach iperf3 and redis, and how to take it down. */
interface Path {
  iperfPort: number;
  redisPort: number;
  close(): Promise<void>;
}

const { values: args } = parseArgs({
  options: {
    report: { type: 'boolean' },
    seconds: { type: 'string', default: '5' },
    paths: { type: 'string', default: PATHS.join(',') },
    figures: { type: 'string', default: 'iperf,redis,conns' },
    workers: { type: 'string', default: '16' },
    rounds: { type: 'string', default: '3' },
  },
});
const figuresWanted = new Set(args.figures.split(','));
const SECONDS = Number(args.seconds);
const ROUNDS = Number(args.rounds);
const selected = args.paths.split(',') as PathName[];
for (const p of selected) if (!PATHS.includes(p)) throw new Error(`unknown path ${p} (known: ${PATHS.join(', ')})`);

const work = mkdtempSync(join(os.tmpdir(), 'muxwire-tunnel-bench-'));
const children: ChildProcess[] = [];

function runProgram(command: string, argv: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, argv, { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 64 << 20 }, (error, stdout, stderr) => {
      if (error !== null) reject(new Error(`${command} failed: ${error.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

function start(command: string, argv: string[], stdio: 'ignore' | 'pipe' = 'ignore'): ChildProcess {
  const child = spawn(command, argv, { stdio: ['ignore', stdio, stdio === 'pipe' ? 'pipe' : 'ignore'] });
  children.push(child);
  return child;
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await once(child, 'exit');
  clearTimeout(timer);
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const up = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (up) return;
    if (performance.now() > deadline) throw new Error(`${what} did not listen on ${port}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Starts `muxwire` with --json and resolves to the first event `match` accepts. */
function muxwire(argv: string[], match: (event: { event: string; port?: number }) => boolean, count = 1): Promise<{ child: ChildProcess; events: { event: string; port?: number }[] }> {
  const nodeArgs = (process.env.MUXWIRE_BENCH_NODE_ARGS ?? '').split(' ').filter((a) => a !== '');
  const child = start(process.execPath, [...nodeArgs, CLI, ...argv, '--json'], 'pipe');
  const events: { event: string; port?: number }[] = [];
  return new Promise((resolve, reject) => {
    let pending = '';
    const timer = setTimeout(() => reject(new Error(`muxwire ${argv[0]} did not start: ${JSON.stringify(events)}`)), 15_000);
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      pending += chunk;
      let newline: number;
      while ((newline = pending.indexOf('\n')) >= 0) {
        const event = JSON.parse(pending.slice(0, newline)) as { event: string; port?: number };
        pending = pending.slice(newline + 1);
        events.push(event);
        if (event.event === 'fatal') reject(new Error(`muxwire: ${JSON.stringify(event)}`));
        if (events.filter(match).length === count) {
          clearTimeout(timer);
          resolve({ child, events });
        }
      }
    });
  });
}

async function muxwirePath(kind: 'tcp' | 'tls' | 'ws', iperf: number, redis: number, tls: { certFile: string; keyFile: string }): Promise<Path> {
  const tokenFile = join(work, 'token');
  const serverArgs = ['server', '--listen', '127.0.0.1:0', '--token-file', tokenFile, '--allow', `127.0.0.1:${iperf}`, '--allow', `127.0.0.1:${redis}`];
  if (kind === 'tls') serverArgs.push('--tls-cert', tls.certFile, '--tls-key', tls.keyFile);
  if (kind === 'ws') serverArgs.push('--ws', '/tunnel');
  const server = await muxwire(serverArgs, (e) => e.event === 'listening');
  const port = server.events.find((e) => e.event === 'listening')!.port!;
  const where = kind === 'ws' ? ['--ws', `ws://127.0.0.1:${port}/tunnel`] : ['--server', `127.0.0.1:${port}`];
  if (kind === 'tls') where.push('--tls', '--ca', tls.certFile);
  const client = await muxwire(['client', ...where, '--token-file', tokenFile, '-L', `0:127.0.0.1:${iperf}`, '-L', `0:127.0.0.1:${redis}`],
    (e) => e.event === 'session-up');
  const ports = client.events.filter((e) => e.event === 'local-listening').map((e) => e.port!);
  return {
    iperfPort: ports[0]!,
    redisPort: ports[1]!,
    async close() {
      await stop(client.child);
      await stop(server.child);
    },
  };
}

/** sshd as root on a loopback port, keys made here, and `ssh -N -L` for both targets with the defaults users get. */
async function sshPath(iperf: number, redis: number): Promise<Path> {
  if (process.getuid?.() !== 0) throw new Error('ssh -L needs sshd, which this benchmark runs as root');
  const dir = mkdtempSync(join(work, 'ssh-'));
  await runProgram('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'host_key')], 10_000);
  await runProgram('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'user_key')], 10_000);
  writeFileSync(join(dir, 'authorized_keys'), readFileSync(join(dir, 'user_key.pub')), { mode: 0o600 });
  const port = await freePort();
  writeFileSync(join(dir, 'sshd_config'), [
    `Port ${port}`, 'ListenAddress 127.0.0.1', `HostKey ${join(dir, 'host_key')}`, `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
    'PermitRootLogin prohibit-password', 'PasswordAuthentication no', 'KbdInteractiveAuthentication no', 'UsePAM no',
    'StrictModes no', `PidFile ${join(dir, 'sshd.pid')}`, 'AllowTcpForwarding yes', '',
  ].join('\n'));
  mkdirSync('/run/sshd', { recursive: true }); // sshd's privilege separation directory
  const sshd = start('/usr/sbin/sshd', ['-D', '-e', '-f', join(dir, 'sshd_config')]);
  await waitForPort(port, 'sshd');
  const [localIperf, localRedis] = [await freePort(), await freePort()];
  const ssh = start('ssh', ['-N', '-p', String(port), '-i', join(dir, 'user_key'), '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no',
    '-o', `UserKnownHostsFile=${join(dir, 'known_hosts')}`, '-o', 'ExitOnForwardFailure=yes',
    '-L', `${localIperf}:127.0.0.1:${iperf}`, '-L', `${localRedis}:127.0.0.1:${redis}`, 'root@127.0.0.1']);
  await waitForPort(localIperf, 'ssh -L');
  await waitForPort(localRedis, 'ssh -L');
  return {
    iperfPort: localIperf,
    redisPort: localRedis,
    async close() {
      await stop(ssh);
      await stop(sshd);
    },
  };
}

/** iperf3's server runs one test at a time and may still be finishing the last one: a refusal is retried. */
async function iperfGbps(port: number): Promise<number> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await iperfOnce(port);
    } catch (error) {
      if (attempt === 3) throw error;
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
}

async function iperfOnce(port: number): Promise<number> {
  const out = await runProgram('iperf3', ['-c', '127.0.0.1', '-p', String(port), '-t', String(SECONDS), '-J'], (SECONDS + 30) * 1000);
  const report = JSON.parse(out) as { end: { sum_received: { bits_per_second: number } } };
  return report.end.sum_received.bits_per_second / 1e9;
}

async function redisRps(port: number): Promise<number> {
  const out = await runProgram('redis-benchmark', ['-h', '127.0.0.1', '-p', String(port), '-c', '50', '-n', String(40_000 * SECONDS),
    '-t', 'get', '--csv'], (SECONDS * 10 + 60) * 1000);
  const row = out.split('\n').find((line) => line.startsWith('"GET"'));
  if (row === undefined) throw new Error(`redis-benchmark printed no GET row:\n${out}`);
  return Number((JSON.parse(`[${row}]`) as unknown[])[1]);
}

/** One connection: connect, PING, read +PONG, close. */
function pingOnce(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let reply = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('no PONG within 10 s'));
    }, 10_000);
    socket.setEncoding('utf8');
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk: string) => {
      reply += chunk;
      if (reply.includes('+PONG\r\n')) {
        clearTimeout(timer);
        socket.end();
        resolve();
      }
    });
    socket.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

/** Connections opened per second by `--workers` (16) workers, each opening one after the other, for `SECONDS`. */
async function connectionsPerSecond(port: number): Promise<number> {
  const deadline = performance.now() + SECONDS * 1000;
  const started = performance.now();
  let count = 0;
  await Promise.all(Array.from({ length: Number(args.workers) }, async () => {
    while (performance.now() < deadline) {
      await pingOnce(port);
      count += 1;
    }
  }));
  return count / ((performance.now() - started) / 1000);
}

/** The figures asked for (`--figures`, for profiling one of them alone); the others are NaN. */
async function measure(path: Path): Promise<Figures> {
  const iperf = figuresWanted.has('iperf') ? await iperfGbps(path.iperfPort) : NaN;
  const redis = figuresWanted.has('redis') ? await redisRps(path.redisPort) : NaN;
  const conns = figuresWanted.has('conns') ? await connectionsPerSecond(path.redisPort) : NaN;
  return { iperfGbps: iperf, redisRps: redis, connsPerSecond: conns };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

function table(results: Map<PathName, Figures>): string {
  const direct = results.get('direct');
  const ssh = results.get('ssh');
  const ratio = (value: number, base: number | undefined): string => (base === undefined ? '' : `${(value / base).toFixed(2)}x`);
  const lines = [
    '| path | iperf3 (1 stream) | / direct | / ssh -L | redis GET, 50 clients | / direct | / ssh -L | connections/s | / direct | / ssh -L |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const [name, f] of results) {
    lines.push(`| ${name === 'ssh' ? '`ssh -L`' : name} | ${f.iperfGbps.toFixed(2)} Gbit/s | ${ratio(f.iperfGbps, direct?.iperfGbps)} | ${ratio(f.iperfGbps, ssh?.iperfGbps)} `
      + `| ${Math.round(f.redisRps).toLocaleString('en-US')}/s | ${ratio(f.redisRps, direct?.redisRps)} | ${ratio(f.redisRps, ssh?.redisRps)} `
      + `| ${Math.round(f.connsPerSecond).toLocaleString('en-US')}/s | ${ratio(f.connsPerSecond, direct?.connsPerSecond)} | ${ratio(f.connsPerSecond, ssh?.connsPerSecond)} |`);
  }
  return lines.join('\n');
}

function targets(results: Map<PathName, Figures>): string {
  const direct = results.get('direct');
  const ssh = results.get('ssh');
  const lines: string[] = [];
  for (const name of ['muxwire-tcp', 'muxwire-tls', 'muxwire-ws'] as const) {
    const f = results.get(name);
    if (f === undefined) continue;
    const checks: string[] = [];
    if (ssh !== undefined) {
      const t = f.iperfGbps / ssh.iperfGbps;
      checks.push(`throughput ${t.toFixed(2)}x ssh -L (target >= 2x) ${t >= 2 ? '✓' : '✗'}`);
      const c = f.connsPerSecond / ssh.connsPerSecond;
      checks.push(`connections/s ${c.toFixed(2)}x ssh -L (target >= 3x) ${c >= 3 ? '✓' : '✗'}`);
    }
    if (direct !== undefined) {
      const r = f.redisRps / direct.redisRps;
      checks.push(`redis ${r.toFixed(2)}x direct (target >= 0.8x) ${r >= 0.8 ? '✓' : '✗'}`);
    }
    lines.push(`- ${name}: ${checks.join('; ')}`);
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const tokenFile = join(work, 'token');
  writeFileSync(tokenFile, `${'bench-token-'.repeat(3)}\n`);
  // The certificate is made by the test suite's generator (compiled into dist/test by `npm run build`).
  const selfSigned = await import(new URL('../test/support/self-signed.js', import.meta.url).href) as {
    selfSignedCertificate(name: string): { cert: string; key: string };
  };
  const material = selfSigned.selfSignedCertificate('localhost');
  const tls = { certFile: join(work, 'cert.pem'), keyFile: join(work, 'key.pem') };
  writeFileSync(tls.certFile, material.cert);
  writeFileSync(tls.keyFile, material.key);

  const iperfTarget = await freePort();
  const redisTarget = await freePort();
  start('iperf3', ['-s', '-B', '127.0.0.1', '-p', String(iperfTarget)]);
  start('redis-server', ['--port', String(redisTarget), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']);
  await waitForPort(iperfTarget, 'iperf3 -s');
  await waitForPort(redisTarget, 'redis-server');
  await runProgram('redis-cli', ['-p', String(redisTarget), 'set', 'key:__rand_int__', 'x'.repeat(3)], 10_000);

  // The machine is shared: its load is part of the circumstances of the figures.
  const loadBefore = os.loadavg()[0]!;
  // Rounds in which the paths take turns, so that a change in the machine's load falls on all of them; the
  // table shows each figure's median over the rounds.
  const rounds = new Map<PathName, Figures[]>(selected.map((name) => [name, []]));
  for (let round = 1; round <= ROUNDS; round++) {
    for (const name of selected) {
      const path: Path = name === 'direct' ? { iperfPort: iperfTarget, redisPort: redisTarget, close: async () => {} }
        : name === 'ssh' ? await sshPath(iperfTarget, redisTarget)
          : await muxwirePath(name.slice('muxwire-'.length) as 'tcp' | 'tls' | 'ws', iperfTarget, redisTarget, tls);
      try {
        const figures = await measure(path);
        rounds.get(name)!.push(figures);
        process.stderr.write(`round ${round} ${name}: ${figures.iperfGbps.toFixed(2)} Gbit/s, ${Math.round(figures.redisRps)} GET/s, `
          + `${Math.round(figures.connsPerSecond)} connections/s\n`);
      } finally {
        await path.close();
      }
    }
  }
  const results = new Map<PathName, Figures>([...rounds].map(([name, list]) => [name, {
    iperfGbps: median(list.map((f) => f.iperfGbps)),
    redisRps: median(list.map((f) => f.redisRps)),
    connsPerSecond: median(list.map((f) => f.connsPerSecond)),
  }]));

  const sshVersion = await new Promise<string>((resolve) => {
    execFile('ssh', ['-V'], (_error, stdout, stderr) => resolve(`${stdout}${stderr}`.split(',')[0]!.trim()));
  });
  const section = [
    TUNNEL_START,
    '## The tunnel command against `ssh -L`',
    '',
    `One run of \`npm run bench:tunnel\` (bench/tunnel.ts), ${new Date().toISOString().slice(0, 10)}, ${os.cpus().length} cores, `
      + `medians of ${ROUNDS} round${ROUNDS === 1 ? '' : 's'} in which the paths take turns, `
      + `Node ${process.version}; all on 127.0.0.1. Each path forwards to the same iperf3 and redis-server; \`ssh -L\` is Debian's `
      + `OpenSSH${sshVersion === '' ? '' : ` (${sshVersion.trim()})`} with its default cipher, sshd run as root on a loopback port with keys made for the run. `
      + `iperf3: one stream for ${SECONDS} s. redis: \`redis-benchmark -c 50 -t get\`. connections/s: 16 workers each connecting, `
      + 'sending a Redis PING, reading the PONG and closing, in turn. Every program, both tunnel ends and ssh/sshd share the same cores, '
      + 'so a tunnel\'s own CPU use shows in every figure. '
      + `Load average (1 min) ${loadBefore.toFixed(1)} at the start, ${os.loadavg()[0]!.toFixed(1)} at the end (other work on the machine).`,
    '',
    table(results),
    '',
    targets(results),
    '',
    TUNNEL_END,
  ].join('\n');
  process.stdout.write(`${section}\n`);
  if (args.report === true) {
    writeFileSync(DOC, withTunnelSection(existsSync(DOC) ? readFileSync(DOC, 'utf8') : '', section));
    process.stderr.write(`written into ${DOC}\n`);
  }
}

try {
  await main();
} finally {
  for (const child of children) await stop(child);
  rmSync(work, { recursive: true, force: true });
}
