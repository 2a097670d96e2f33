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
//   npm run bench:tunnel -- --paths direct,relay,ssh,muxwire-tcp      # with the floor: two minimal Node relays
//   npm run bench:tunnel -- --baseline ../old --baseline-name 'commit abc1234'   # another build beside this one
//
// Beside each figure, the CPU time (user + system) the path's own processes spent per GB, per request and per
// connection, from /proc: on a shared machine wall-clock figures move with the load, CPU time much less.
//
// Needs iperf3, redis-server, redis-tools, openssh-server and openssh-client (.ci/run installs them), and
// root for sshd. Not part of `npm test`.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { TUNNEL_END, TUNNEL_START, withTunnelSection } from './tunnel-section.js';

const CLI = fileURLToPath(new URL('../src/cli.js', import.meta.url));
const RELAY = fileURLToPath(new URL('./tunnel-relay.js', import.meta.url));
const DOC = fileURLToPath(new URL('../../docs/benchmarks.md', import.meta.url));

const PATHS = ['direct', 'relay', 'ssh', 'muxwire-tcp', 'muxwire-tls', 'muxwire-ws', 'baseline-tcp'] as const;
/**
 * Paths run by default: `relay` (the floor, bench/tunnel-relay.ts) only when asked for, `baseline-tcp` (the
 * command of another build, `--baseline`) only with it.
 */
const DEFAULT_PATHS = PATHS.filter((p) => p !== 'relay' && p !== 'baseline-tcp');
type PathName = (typeof PATHS)[number];

interface Figures {
  iperfGbps: number;
  redisRps: number;
  connsPerSecond: number;
  /** CPU time (user + system) of the path's own processes per unit of work: ms per GB, µs per request and per connection. */
  cpuMsPerGB: number;
  cpuUsPerRequest: number;
  cpuUsPerConnection: number;
}

/** A forwarding path under test: the local ports that reach iperf3 and redis, and how to take it down. */
interface Path {
  iperfPort: number;
  redisPort: number;
  /** The processes that carry the path's traffic (their descendants count too), whose CPU time is measured. */
  pids: number[];
  close(): Promise<void>;
}

const { values: args } = parseArgs({
  options: {
    report: { type: 'boolean' },
    seconds: { type: 'string', default: '5' },
    paths: { type: 'string', default: DEFAULT_PATHS.join(',') },
    figures: { type: 'string', default: 'iperf,redis,conns' },
    workers: { type: 'string', default: '16' },
    rounds: { type: 'string', default: '3' },
    // Another build of muxwire (a directory holding dist/src/cli.js, e.g. an older commit built elsewhere),
    // measured as path `baseline-tcp` beside this one, in the same rounds.
    baseline: { type: 'string' },
    // How the report names that build (a commit, say); the directory otherwise.
    'baseline-name': { type: 'string' },
  },
});
const figuresWanted = new Set(args.figures.split(','));
const SECONDS = Number(args.seconds);
const ROUNDS = Number(args.rounds);
const selected = args.paths.split(',') as PathName[];
if (args.baseline !== undefined && !selected.includes('baseline-tcp')) selected.push('baseline-tcp');
if (selected.includes('baseline-tcp') && args.baseline === undefined)
  throw new Error('path baseline-tcp needs --baseline DIR');
for (const p of selected) if (!PATHS.includes(p)) throw new Error(`unknown path ${p} (known: ${PATHS.join(', ')})`);

const work = mkdtempSync(join(os.tmpdir(), 'muxwire-tunnel-bench-'));
const children: ChildProcess[] = [];

function runProgram(command: string, argv: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      command,
      argv,
      { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 64 << 20 },
      (error, stdout, stderr) => {
        if (error !== null) reject(new Error(`${command} failed: ${error.message}\n${stderr}`));
        else resolve(stdout);
      },
    );
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
function muxwire(
  cli: string,
  argv: string[],
  match: (event: { event: string; port?: number }) => boolean,
  count = 1,
): Promise<{ child: ChildProcess; events: { event: string; port?: number }[] }> {
  const nodeArgs = (process.env.MUXWIRE_BENCH_NODE_ARGS ?? '').split(' ').filter((a) => a !== '');
  const child = start(process.execPath, [...nodeArgs, cli, ...argv, '--json'], 'pipe');
  const events: { event: string; port?: number }[] = [];
  return new Promise((resolve, reject) => {
    let pending = '';
    const timer = setTimeout(
      () => reject(new Error(`muxwire ${argv[0]} did not start: ${JSON.stringify(events)}`)),
      15_000,
    );
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

async function muxwirePath(
  kind: 'tcp' | 'tls' | 'ws',
  iperf: number,
  redis: number,
  tls: { certFile: string; keyFile: string },
  cli = CLI,
): Promise<Path> {
  const tokenFile = join(work, 'token');
  const serverArgs = [
    'server',
    '--listen',
    '127.0.0.1:0',
    '--token-file',
    tokenFile,
    '--allow',
    `127.0.0.1:${iperf}`,
    '--allow',
    `127.0.0.1:${redis}`,
  ];
  if (kind === 'tls') serverArgs.push('--tls-cert', tls.certFile, '--tls-key', tls.keyFile);
  if (kind === 'ws') serverArgs.push('--ws', '/tunnel');
  const server = await muxwire(cli, serverArgs, (e) => e.event === 'listening');
  const port = server.events.find((e) => e.event === 'listening')!.port!;
  const where = kind === 'ws' ? ['--ws', `ws://127.0.0.1:${port}/tunnel`] : ['--server', `127.0.0.1:${port}`];
  if (kind === 'tls') where.push('--tls', '--ca', tls.certFile);
  const client = await muxwire(
    cli,
    ['client', ...where, '--token-file', tokenFile, '-L', `0:127.0.0.1:${iperf}`, '-L', `0:127.0.0.1:${redis}`],
    (e) => e.event === 'session-up',
  );
  const ports = client.events.filter((e) => e.event === 'local-listening').map((e) => e.port!);
  return {
    iperfPort: ports[0]!,
    redisPort: ports[1]!,
    pids: [client.child.pid!, server.child.pid!],
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
  writeFileSync(
    join(dir, 'sshd_config'),
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${join(dir, 'host_key')}`,
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
      'PermitRootLogin prohibit-password',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes no',
      `PidFile ${join(dir, 'sshd.pid')}`,
      'AllowTcpForwarding yes',
      '',
    ].join('\n'),
  );
  mkdirSync('/run/sshd', { recursive: true }); // sshd's privilege separation directory
  const sshd = start('/usr/sbin/sshd', ['-D', '-e', '-f', join(dir, 'sshd_config')]);
  await waitForPort(port, 'sshd');
  const [localIperf, localRedis] = [await freePort(), await freePort()];
  const ssh = start('ssh', [
    '-N',
    '-p',
    String(port),
    '-i',
    join(dir, 'user_key'),
    '-o',
    'BatchMode=yes',
    '-o',
    'StrictHostKeyChecking=no',
    '-o',
    `UserKnownHostsFile=${join(dir, 'known_hosts')}`,
    '-o',
    'ExitOnForwardFailure=yes',
    '-L',
    `${localIperf}:127.0.0.1:${iperf}`,
    '-L',
    `${localRedis}:127.0.0.1:${redis}`,
    'root@127.0.0.1',
  ]);
  await waitForPort(localIperf, 'ssh -L');
  await waitForPort(localRedis, 'ssh -L');
  return {
    iperfPort: localIperf,
    redisPort: localRedis,
    // sshd forks a process per connection (and its privilege-separated child): descendants are counted.
    pids: [ssh.pid!, sshd.pid!],
    async close() {
      await stop(ssh);
      await stop(sshd);
    },
  };
}

/**
 * Two chained minimal Node relays (bench/tunnel-relay.ts): the tunnel's topology without multiplexing, the
 * floor of what two extra Node processes cost on this machine.
 */
async function relayPath(iperf: number, redis: number): Promise<Path> {
  const [innerIperf, innerRedis, outerIperf, outerRedis] = [
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
  ];
  const started = async (argv: string[]): Promise<ChildProcess> => {
    const child = start(process.execPath, [RELAY, ...argv], 'pipe');
    const [chunk] = (await once(child.stdout!, 'data')) as [Buffer];
    if (!chunk.toString().startsWith('ready')) throw new Error(`relay did not start: ${chunk.toString()}`);
    return child;
  };
  const inner = await started([`${innerIperf}:${iperf}`, `${innerRedis}:${redis}`]);
  const outer = await started([`${outerIperf}:${innerIperf}`, `${outerRedis}:${innerRedis}`]);
  return {
    iperfPort: outerIperf,
    redisPort: outerRedis,
    pids: [outer.pid!, inner.pid!],
    async close() {
      await stop(outer);
      await stop(inner);
    },
  };
}

/** CPU time (user + system, in ms) used so far by `pids` and all their descendants, from /proc. */
function cpuMs(pids: number[]): number {
  const ticks = 100; // USER_HZ: /proc reports CPU time in 1/100 s on Linux
  const stats = new Map<number, { ppid: number; time: number }>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let text: string;
    try {
      text = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    // The command name (field 2) may hold spaces and parentheses: the fields after it follow the last ')'.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    stats.set(Number(entry), { ppid: Number(fields[1]), time: Number(fields[11]) + Number(fields[12]) });
  }
  const wanted = new Set(pids);
  for (let grew = true; grew;) {
    grew = false;
    for (const [pid, { ppid }] of stats) {
      if (!wanted.has(pid) && wanted.has(ppid)) {
        wanted.add(pid);
        grew = true;
      }
    }
  }
  let total = 0;
  for (const pid of wanted) total += stats.get(pid)?.time ?? 0;
  return (total * 1000) / ticks;
}

/** Runs `work`, returning its result and the CPU time `pids` used meanwhile. */
async function withCpu<T>(pids: number[], work: () => Promise<T>): Promise<{ result: T; cpu: number }> {
  const before = cpuMs(pids);
  const result = await work();
  return { result, cpu: cpuMs(pids) - before };
}

/** iperf3's server runs one test at a time and may still be finishing the last one: a refusal is retried. */
async function iperf(port: number): Promise<{ gbps: number; bytes: number }> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await iperfOnce(port);
    } catch (error) {
      if (attempt === 3) throw error;
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
}

async function iperfOnce(port: number): Promise<{ gbps: number; bytes: number }> {
  const out = await runProgram(
    'iperf3',
    ['-c', '127.0.0.1', '-p', String(port), '-t', String(SECONDS), '-J'],
    (SECONDS + 30) * 1000,
  );
  const report = JSON.parse(out) as { end: { sum_received: { bits_per_second: number; bytes: number } } };
  return { gbps: report.end.sum_received.bits_per_second / 1e9, bytes: report.end.sum_received.bytes };
}

const REDIS_REQUESTS = 40_000 * SECONDS;

async function redisRps(port: number): Promise<number> {
  const out = await runProgram(
    'redis-benchmark',
    ['-h', '127.0.0.1', '-p', String(port), '-c', '50', '-n', String(REDIS_REQUESTS), '-t', 'get', '--csv'],
    (SECONDS * 10 + 60) * 1000,
  );
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
async function connectionsPerSecond(port: number): Promise<{ rate: number; count: number }> {
  const deadline = performance.now() + SECONDS * 1000;
  const started = performance.now();
  let count = 0;
  await Promise.all(
    Array.from({ length: Number(args.workers) }, async () => {
      while (performance.now() < deadline) {
        await pingOnce(port);
        count += 1;
      }
    }),
  );
  return { rate: count / ((performance.now() - started) / 1000), count };
}

/** The figures asked for (`--figures`, for profiling one of them alone); the others are NaN. */
async function measure(path: Path): Promise<Figures> {
  const f: Figures = {
    iperfGbps: NaN,
    redisRps: NaN,
    connsPerSecond: NaN,
    cpuMsPerGB: NaN,
    cpuUsPerRequest: NaN,
    cpuUsPerConnection: NaN,
  };
  if (figuresWanted.has('iperf')) {
    const { result, cpu } = await withCpu(path.pids, () => iperf(path.iperfPort));
    f.iperfGbps = result.gbps;
    f.cpuMsPerGB = cpu / (result.bytes / 1e9);
  }
  if (figuresWanted.has('redis')) {
    const { result, cpu } = await withCpu(path.pids, () => redisRps(path.redisPort));
    f.redisRps = result;
    f.cpuUsPerRequest = (cpu * 1000) / REDIS_REQUESTS;
  }
  if (figuresWanted.has('conns')) {
    const { result, cpu } = await withCpu(path.pids, () => connectionsPerSecond(path.redisPort));
    f.connsPerSecond = result.rate;
    f.cpuUsPerConnection = (cpu * 1000) / result.count;
  }
  return f;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

type Figure = 'iperfGbps' | 'redisRps' | 'connsPerSecond';

/**
 * `name`'s figure over `base`'s, taken in each round (the two measured minutes apart, under the same load)
 * and then the median of those: steadier on a shared machine than the ratio of the two medians.
 */
function ratioOf(rounds: Map<PathName, Figures[]>, name: PathName, base: PathName, figure: Figure): number | undefined {
  const mine = rounds.get(name);
  const theirs = rounds.get(base);
  if (mine === undefined || theirs === undefined) return undefined;
  return median(mine.map((f, i) => f[figure] / theirs[i]![figure]));
}

function table(results: Map<PathName, Figures>, rounds: Map<PathName, Figures[]>): string {
  const ratio = (name: PathName, base: PathName, figure: Figure): string => {
    const r = ratioOf(rounds, name, base, figure);
    return r === undefined ? '' : `${r.toFixed(2)}x`;
  };
  const lines = [
    '| path | iperf3 (1 stream) | / direct | / ssh -L | redis GET, 50 clients | / direct | / ssh -L | connections/s | / direct | / ssh -L |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const [name, f] of results) {
    lines.push(
      `| ${label(name)} | ${f.iperfGbps.toFixed(2)} Gbit/s | ${ratio(name, 'direct', 'iperfGbps')} | ${ratio(name, 'ssh', 'iperfGbps')} ` +
        `| ${Math.round(f.redisRps).toLocaleString('en-US')}/s | ${ratio(name, 'direct', 'redisRps')} | ${ratio(name, 'ssh', 'redisRps')} ` +
        `| ${Math.round(f.connsPerSecond).toLocaleString('en-US')}/s | ${ratio(name, 'direct', 'connsPerSecond')} | ${ratio(name, 'ssh', 'connsPerSecond')} |`,
    );
  }
  return lines.join('\n');
}

function label(name: PathName): string {
  return name === 'ssh'
    ? '`ssh -L`'
    : name === 'relay'
      ? 'relay (floor)'
      : name === 'baseline-tcp'
        ? 'baseline-tcp (--baseline)'
        : name;
}

/** The CPU time the path's own processes spent per unit of work (medians over the rounds). */
function cpuTable(results: Map<PathName, Figures>): string {
  const lines = ['| path | CPU per GB (iperf3) | CPU per redis request | CPU per connection |', '|---|---:|---:|---:|'];
  const show = (value: number, unit: string, digits: number): string =>
    Number.isNaN(value) ? '' : `${value.toFixed(digits)} ${unit}`;
  for (const [name, f] of results) {
    if (name === 'direct') continue;
    lines.push(
      `| ${label(name)} | ${show(f.cpuMsPerGB, 'ms', 0)} | ${show(f.cpuUsPerRequest, 'µs', 1)} | ${show(f.cpuUsPerConnection, 'µs', 0)} |`,
    );
  }
  return lines.join('\n');
}

function targets(rounds: Map<PathName, Figures[]>): string {
  const lines: string[] = [];
  const x = (name: PathName, base: PathName, figure: Figure): number => ratioOf(rounds, name, base, figure)!;
  const hasSsh = rounds.has('ssh');
  const hasDirect = rounds.has('direct');
  // What the targets ask, set against what is possible: no relay beats the direct connection, and the
  // floor shows what two extra Node processes cost by themselves.
  if (hasDirect && hasSsh) {
    const c = x('direct', 'ssh', 'connsPerSecond');
    lines.push(
      `- ceiling: direct itself made ${c.toFixed(2)}x the connections/s of ssh -L (3x ssh -L means ${(3 / c).toFixed(2)}x direct)`,
    );
  }
  if (rounds.has('relay') && hasDirect) {
    lines.push(
      `- floor (relay): redis ${x('relay', 'direct', 'redisRps').toFixed(2)}x direct; ` +
        `connections/s ${x('relay', 'direct', 'connsPerSecond').toFixed(2)}x direct` +
        `${hasSsh ? `, ${x('relay', 'ssh', 'connsPerSecond').toFixed(2)}x ssh -L` : ''}; ` +
        `throughput ${x('relay', 'direct', 'iperfGbps').toFixed(2)}x direct` +
        (hasSsh ? `, ${x('relay', 'ssh', 'iperfGbps').toFixed(2)}x ssh -L` : ''),
    );
  }
  for (const name of ['muxwire-tcp', 'muxwire-tls', 'muxwire-ws', 'baseline-tcp'] as const) {
    if (!rounds.has(name)) continue;
    const checks: string[] = [];
    if (hasSsh) {
      const t = x(name, 'ssh', 'iperfGbps');
      checks.push(`throughput ${t.toFixed(2)}x ssh -L (target >= 2x) ${t >= 2 ? '✓' : '✗'}`);
      const c = x(name, 'ssh', 'connsPerSecond');
      checks.push(`connections/s ${c.toFixed(2)}x ssh -L (target >= 3x) ${c >= 3 ? '✓' : '✗'}`);
    }
    if (hasDirect) {
      const r = x(name, 'direct', 'redisRps');
      checks.push(`redis ${r.toFixed(2)}x direct (target >= 0.8x) ${r >= 0.8 ? '✓' : '✗'}`);
    }
    lines.push(`- ${name}: ${checks.join('; ')}`);
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const tokenFile = join(work, 'token');
  writeFileSync(tokenFile, `${'bench-token-'.repeat(3)}\n`, { mode: 0o600 });
  // The certificate is made by the test suite's generator (compiled into dist/test by `npm run build`).
  const selfSigned = (await import(new URL('../test/support/self-signed.js', import.meta.url).href)) as {
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
      const path: Path =
        name === 'direct'
          ? { iperfPort: iperfTarget, redisPort: redisTarget, pids: [], close: async () => {} }
          : name === 'ssh'
            ? await sshPath(iperfTarget, redisTarget)
            : name === 'relay'
              ? await relayPath(iperfTarget, redisTarget)
              : name === 'baseline-tcp'
                ? await muxwirePath('tcp', iperfTarget, redisTarget, tls, join(args.baseline!, 'dist/src/cli.js'))
                : await muxwirePath(
                    name.slice('muxwire-'.length) as 'tcp' | 'tls' | 'ws',
                    iperfTarget,
                    redisTarget,
                    tls,
                  );
      try {
        const figures = await measure(path);
        rounds.get(name)!.push(figures);
        process.stderr.write(
          `round ${round} ${name}: ${figures.iperfGbps.toFixed(2)} Gbit/s, ${Math.round(figures.redisRps)} GET/s, ` +
            `${Math.round(figures.connsPerSecond)} connections/s; CPU ${figures.cpuMsPerGB.toFixed(0)} ms/GB, ` +
            `${figures.cpuUsPerRequest.toFixed(1)} µs/request, ${figures.cpuUsPerConnection.toFixed(0)} µs/connection\n`,
        );
      } finally {
        await path.close();
      }
    }
  }
  const results = new Map<PathName, Figures>(
    [...rounds].map(([name, list]) => [
      name,
      {
        iperfGbps: median(list.map((f) => f.iperfGbps)),
        redisRps: median(list.map((f) => f.redisRps)),
        connsPerSecond: median(list.map((f) => f.connsPerSecond)),
        cpuMsPerGB: median(list.map((f) => f.cpuMsPerGB)),
        cpuUsPerRequest: median(list.map((f) => f.cpuUsPerRequest)),
        cpuUsPerConnection: median(list.map((f) => f.cpuUsPerConnection)),
      },
    ]),
  );

  const sshVersion = await new Promise<string>((resolve) => {
    execFile('ssh', ['-V'], (_error, stdout, stderr) => resolve(`${stdout}${stderr}`.split(',')[0]!.trim()));
  });
  const section = [
    TUNNEL_START,
    '## The tunnel command against `ssh -L`',
    '',
    `One run of \`npm run bench:tunnel\` (bench/tunnel.ts), ${new Date().toISOString().slice(0, 10)}, ${os.cpus().length} cores, ` +
      `medians of ${ROUNDS} round${ROUNDS === 1 ? '' : 's'} in which the paths take turns (a ratio is the median of the rounds' ratios), ` +
      `Node ${process.version}; all on 127.0.0.1. Each path forwards to the same iperf3 and redis-server; \`ssh -L\` is Debian's ` +
      `OpenSSH${sshVersion === '' ? '' : ` (${sshVersion.trim()})`} with its default cipher, sshd run as root on a loopback port with keys made for the run. ` +
      `iperf3: one stream for ${SECONDS} s. redis: \`redis-benchmark -c 50 -t get\`. connections/s: 16 workers each connecting, ` +
      'sending a Redis PING, reading the PONG and closing, in turn. Every program, both tunnel ends and ssh/sshd share the same cores, ' +
      "so a tunnel's own CPU use shows in every figure. " +
      (selected.includes('relay')
        ? "`relay` is the floor: two chained minimal Node relays (bench/tunnel-relay.ts), the tunnel's " +
          'topology (two extra processes, four extra sockets per connection) without multiplexing, authentication or status. '
        : '') +
      (selected.includes('baseline-tcp')
        ? `\`baseline-tcp\` is the command of another build (${args['baseline-name'] ?? args.baseline}) over TCP. `
        : '') +
      `Load average (1 min) ${loadBefore.toFixed(1)} at the start, ${os.loadavg()[0]!.toFixed(1)} at the end (other work on the machine).`,
    '',
    table(results, rounds),
    '',
    "CPU time (user + system) of each path's own processes per unit of work, read from `/proc` (both tunnel ends; " +
      '`ssh` and `sshd` with its per-connection children; both relays):',
    '',
    cpuTable(results),
    '',
    targets(rounds),
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
