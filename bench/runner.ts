// `npm run bench [-- options]`: for each workload, for each implementation, start a server process,
// (for long-fat a delay proxy), and a client process over loopback TCP; collect the client's verified
// figures; kill them; print one table per workload with ratios to raw TCP. Optionally write the JSON, the
// SVG chart (chart.ts) and the Markdown document (document.ts); --report writes all three under docs/.
import { fork, execFileSync, execSync, type ChildProcess } from 'node:child_process';
import { writeFileSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import { IMPLEMENTATIONS, findImpl, type ImplEntry } from './impl/index.js';
import {
  WORKLOADS,
  describeParams,
  findWorkload,
  maxChannelsFor,
  type WorkloadDef,
  type WorkloadParams,
} from './workloads.js';
import type { ChildMessage, ClientConfig, ClientResult, ProxyConfig, ServerConfig, ServerStats } from './ipc.js';
import { computeRatios, formatText, mergeRounds, type RunRecord, type Report } from './report.js';
import { renderChart } from './chart.js';
import { writeDocument } from './document.js';
import { evaluateAll } from './targets.js';

const HERE = dirname(fileURLToPath(import.meta.url));
/** The repository root (this file runs from dist/bench/). */
const ROOT = resolve(HERE, '..', '..');
/** Node flags of the server, client and proxy processes; MUXWIRE_BENCH_NODE_ARGS adds more (e.g. `--cpu-prof`). */
const CHILD_ARGS = [
  '--expose-gc',
  '--max-old-space-size=8192',
  '--no-deprecation',
  ...(process.env.MUXWIRE_BENCH_NODE_ARGS ?? '').split(' ').filter((arg) => arg !== ''),
];

interface Options {
  quick: boolean;
  workloads: WorkloadDef[];
  impls: ImplEntry[];
  json?: string;
  markdown?: string;
  svg?: string;
  noSvg: boolean;
  report: boolean;
  /** re-render from a saved JSON report instead of running */
  from?: string;
  capSeconds?: number;
  /** rounds per implementation for every workload, instead of each workload's own count */
  repeats?: number;
  /** channels for every workload that uses several, instead of the workload's own count (e.g. idle with 1,000,000) */
  channels?: number;
  verbose: boolean;
  /** workloads / impls narrowed on the command line */
  partial: string[];
}

const USAGE = `usage: npm run bench -- [--quick] [--workloads a,b] [--impls x,y] [--cap SECONDS] [--repeats N] [--channels N]
                        [--verbose] [--json FILE] [--markdown FILE] [--svg FILE | --no-svg] [--report] [--from FILE]
  --repeats N      rounds per implementation for every workload (default: the workload's own count, 1 to 5
                   in a full run, 1 with --quick); each figure is the median of its rounds
  --channels N     channels for the workloads that use several (bulk-100, open-10k, rr-100, idle) instead of
                   their own count, e.g. --workloads idle --impls muxwire-light --channels 1000000
  --markdown FILE  the results document (headline, chart link, tables, targets, kept profiling notes);
                   the chart goes beside it (FILE with .svg) unless --svg or --no-svg says otherwise
  --svg FILE       the chart (SVG)
  --report         the full suite, written to docs/benchmarks.md, docs/benchmarks.svg, docs/benchmarks.json
  --from FILE      no runs: re-render --markdown / --svg / --report output from a saved --json file
  workloads: ${WORKLOADS.map((w) => w.id).join(', ')}
  impls:     ${IMPLEMENTATIONS.map((i) => (i.workloads ? `${i.name} (${i.reference ? 'a yardstick, ' : ''}${i.explicit ? 'by name only, ' : ''}only ${i.workloads.join(', ')})` : i.name)).join(', ')}`;

function parseArgs(argv: string[]): Options {
  const o: Options = {
    quick: false,
    workloads: [...WORKLOADS],
    impls: IMPLEMENTATIONS.filter((entry) => entry.explicit !== true),
    verbose: false,
    noSvg: false,
    report: false,
    partial: [],
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const [flag, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case '--quick':
        o.quick = true;
        break;
      case '--workloads':
        o.workloads = value().split(',').filter(Boolean).map(findWorkload);
        o.partial.push(`workloads ${o.workloads.map((w) => w.id).join(', ')}`);
        break;
      case '--impls':
        o.impls = value().split(',').filter(Boolean).map(findImpl);
        o.partial.push(`implementations ${o.impls.map((i) => i.name).join(', ')}`);
        break;
      case '--json':
        o.json = value();
        break;
      case '--markdown':
        o.markdown = value();
        break;
      case '--svg':
        o.svg = value();
        break;
      case '--no-svg':
        o.noSvg = true;
        break;
      case '--report':
        o.report = true;
        break;
      case '--from':
        o.from = value();
        break;
      case '--cap':
        o.capSeconds = Number(value());
        if (!(o.capSeconds > 0)) throw new Error('--cap needs a positive number of seconds');
        break;
      case '--repeats':
        o.repeats = Number(value());
        if (!Number.isInteger(o.repeats) || o.repeats < 1) throw new Error('--repeats needs a whole number >= 1');
        break;
      case '--channels':
        o.channels = Number(value());
        if (!Number.isInteger(o.channels) || o.channels < 1) throw new Error('--channels needs a whole number >= 1');
        o.partial.push(`${o.channels} channels`);
        break;
      case '--verbose':
        o.verbose = true;
        break;
      case '--help':
      case '-h':
        console.log(USAGE);
        process.exit(0);
        break;
      default:
        throw new Error(`unknown option ${a}\n${USAGE}`);
    }
  }
  if (o.report) {
    o.markdown ??= join(ROOT, 'docs', 'benchmarks.md');
    o.json ??= join(ROOT, 'docs', 'benchmarks.json');
  }
  if (o.noSvg) delete o.svg;
  else if (o.svg === undefined && o.markdown) o.svg = o.markdown.replace(/(\.md)?$/, '.svg');
  return o;
}

// ---- the machine and the command, for the record ----

function osName(): string {
  try {
    const m = /^PRETTY_NAME="?([^"\n]*)"?/m.exec(readFileSync('/etc/os-release', 'utf8'));
    if (m?.[1]) return `${m[1]}, ${os.type()} ${os.release()} ${os.arch()}`;
  } catch {
    // not Linux, or no os-release
  }
  return `${os.type()} ${os.release()} ${os.arch()}`;
}

function cpuModel(): string {
  const model = os.cpus()[0]?.model?.trim() || '?';
  const mhz = os.cpus()[0]?.speed;
  return mhz ? `${model} @ ${(mhz / 1000).toFixed(1)} GHz` : model;
}

function commandLine(): string {
  const args = process.argv.slice(2).map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, "'\\''")}'`));
  if (process.env.npm_lifecycle_event === 'bench') return `npm run bench${args.length ? ` -- ${args.join(' ')}` : ''}`;
  return ['node dist/bench/runner.js', ...args].join(' ');
}

function duration(ms: number): string {
  const s = Math.round(ms / 1000);
  return s < 120 ? `${s} s` : `${Math.floor(s / 60)} min ${s % 60} s`;
}

/** Writes the outputs the options ask for. */
function writeOutputs(report: Report, o: Options): void {
  const write = (file: string, text: string): void => {
    mkdirSync(dirname(resolve(file)), { recursive: true });
    const tmp = `${file}.tmp-${process.pid}`;
    writeFileSync(tmp, text);
    renameSync(tmp, file);
  };
  for (const w of report.workloads) computeRatios(report, w.id);
  if (o.json) {
    write(o.json, JSON.stringify({ ...report, targets: evaluateAll(report) }, null, 2) + '\n');
    console.log(`JSON written to ${o.json}`);
  }
  if (o.svg) {
    write(o.svg, renderChart(report));
    console.log(`chart written to ${o.svg}`);
  }
  if (o.markdown) {
    mkdirSync(dirname(resolve(o.markdown)), { recursive: true });
    const { backup } = writeDocument(report, {
      path: o.markdown,
      ...(o.svg ? { svgPath: o.svg } : {}),
      ...(o.json ? { jsonPath: o.json } : {}),
    });
    if (backup) console.log(`note: ${o.markdown} had no notes markers; the old file was copied to ${backup}`);
    console.log(`Markdown written to ${o.markdown}`);
  }
}

// ---- child processes ----

const live = new Set<ChildProcess>();

interface Child {
  proc: ChildProcess;
  role: string;
  messages: ChildMessage[];
  lastProgress: string;
  output: string; // tail of stdout+stderr
  exited: Promise<number | null>;
  /** the client's marks of its measured part, passed on to the server at once */
  onMark?: (phase: 'start' | 'end') => void;
  next(pred: (m: ChildMessage) => boolean): Promise<ChildMessage>;
}

/**
 * MUXWIRE_BENCH_CLIENT_WRAPPER runs the client process under another program, e.g.
 * `valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.%p` to count the cold client's instructions
 * (give a generous `--cap`: the client runs tens of times slower); MUXWIRE_BENCH_SERVER_WRAPPER does the same
 * for the server process (the receive side: decoding, pushes, Window Updates). Each wraps its own role only.
 */
const WRAPPERS: Readonly<Record<string, readonly string[]>> = {
  client: (process.env.MUXWIRE_BENCH_CLIENT_WRAPPER ?? '').split(' ').filter((arg) => arg !== ''),
  server: (process.env.MUXWIRE_BENCH_SERVER_WRAPPER ?? '').split(' ').filter((arg) => arg !== ''),
};

/**
 * MUXWIRE_BENCH_MARK_COMMAND runs a command at each mark of the measured part, for the client and the server
 * process in turn, with `on` (start) or `off` (end) and the process's id as its last two arguments: with
 * `callgrind_control -i` and both processes under `valgrind --tool=callgrind --instr-atstart=no`, the
 * instructions counted are the measured part's alone.
 */
const MARK_COMMAND = (process.env.MUXWIRE_BENCH_MARK_COMMAND ?? '').split(' ').filter((arg) => arg !== '');

function spawnChild(role: string, script: string, config: unknown, verbose: boolean): Child {
  const wrapper = WRAPPERS[role] ?? [];
  const wrapped = wrapper.length > 0;
  const proc = fork(join(HERE, script), [JSON.stringify(config)], {
    // fork() runs `execPath ...execArgv script args`; a wrapper takes node's place and is handed node itself.
    ...(wrapped ? { execPath: wrapper[0] } : {}),
    execArgv: wrapped ? [...wrapper.slice(1), process.execPath, ...CHILD_ARGS] : CHILD_ARGS,
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  live.add(proc);
  const waiters: { pred: (m: ChildMessage) => boolean; resolve: (m: ChildMessage) => void }[] = [];
  const child: Child = {
    proc,
    role,
    messages: [],
    lastProgress: '',
    output: '',
    exited: new Promise((resolve) => {
      proc.on('exit', (code) => {
        live.delete(proc);
        resolve(code);
      });
    }),
    next(pred) {
      const found = child.messages.find(pred);
      if (found) {
        child.messages.splice(child.messages.indexOf(found), 1);
        return Promise.resolve(found);
      }
      return new Promise((resolve) => waiters.push({ pred, resolve }));
    },
  };
  const keep = (chunk: Buffer): void => {
    if (verbose) process.stderr.write(`[${role}] ${chunk.toString()}`);
    child.output = (child.output + chunk.toString()).slice(-4000);
  };
  proc.stdout?.on('data', keep);
  proc.stderr?.on('data', keep);
  proc.on('message', (m: ChildMessage) => {
    if (m.type === 'progress') {
      child.lastProgress = m.text;
      return;
    }
    if (m.type === 'mark') {
      child.onMark?.(m.phase);
      return;
    }
    const w = waiters.find((x) => x.pred(m));
    if (w) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve(m);
    } else child.messages.push(m);
  });
  proc.on('error', () => {});
  return child;
}

async function killChild(c: Child | undefined): Promise<void> {
  if (!c) return;
  const running = (): boolean => c.proc.exitCode === null && c.proc.signalCode === null;
  // Disconnecting lets a child exit by itself (and write a --cpu-prof profile); one that does not is killed.
  if (running() && c.proc.connected) {
    c.proc.disconnect();
    await Promise.race([c.exited, new Promise((r) => setTimeout(r, 2000))]);
  }
  if (running()) c.proc.kill('SIGKILL');
  await Promise.race([c.exited, new Promise((r) => setTimeout(r, 5000))]);
}

/** A child's failure as a rejection: an 'error' message, or exiting. */
function failureOf(c: Child): Promise<never> {
  return new Promise<never>((_, reject) => {
    void c.next((m) => m.type === 'error').then((m) => reject(new Error(m.type === 'error' ? m.message : '?')));
    void c.exited.then((code) => {
      const tail = lastLine(c.output);
      reject(new Error(`${c.role} exited (code ${code})${tail ? `: ${tail}` : ''}`));
    });
  });
}

function lastLine(text: string): string {
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  const err = [...lines].reverse().find((l) => /error|Error|ERR/.test(l));
  return (err ?? lines[lines.length - 1] ?? '').slice(0, 300);
}

class Timeout extends Error {}

// ---- one run ----

function fdLimit(): number {
  try {
    return Number(execSync('ulimit -n', { shell: '/bin/sh', encoding: 'utf8' }).trim()) || 1024;
  } catch {
    return 1024;
  }
}

function paramsFor(w: WorkloadDef, o: Options, transport: string): { params: WorkloadParams; note?: string } {
  const params = { ...(o.quick ? w.params.quick : w.params.full) };
  if (o.channels !== undefined && params.channels > 2) params.channels = o.channels;
  // One socket per channel: each side holds one descriptor per channel, so stay under the fd limit.
  if (transport === 'per-channel' && w.id === 'idle') {
    const cap = Math.max(1000, fdLimit() - 2000);
    if (params.channels > cap) {
      const note = `${cap} sockets instead of ${params.channels} (fd limit ${fdLimit()})`;
      params.channels = cap;
      return { params, note };
    }
  }
  return { params };
}

async function runOne(w: WorkloadDef, entry: ImplEntry, o: Options): Promise<RunRecord> {
  const record: RunRecord = { workload: w.id, impl: entry.name, status: 'ok', figures: {}, notes: [] };
  const unavailable = entry.unavailable ? await entry.unavailable() : null;
  if (unavailable) {
    record.status = 'skipped';
    record.reason = unavailable;
    return record;
  }
  const { params, note } = paramsFor(w, o, entry.transport);
  if (note) record.notes.push(note);
  const capSeconds = o.capSeconds ?? (o.quick ? w.capSeconds.quick : w.capSeconds.full);
  const maxChannels = maxChannelsFor(params);
  const started = Date.now();
  let server: Child | undefined;
  let proxy: Child | undefined;
  let client: Child | undefined;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Timeout()), capSeconds * 1000);
  });
  try {
    const serverCfg: ServerConfig = { impl: entry.name, maxChannels, noDelay: w.id !== 'bulk-cold' };
    server = spawnChild('server', 'server.js', serverCfg, o.verbose);
    const serverFailed = failureOf(server);
    serverFailed.catch(() => {});
    const listening = await Promise.race([server.next((m) => m.type === 'listening'), serverFailed, timeout]);
    let port = listening.type === 'listening' ? listening.port : 0;
    let proxyFailed = new Promise<never>(() => {});
    if (w.proxy) {
      const proxyCfg: ProxyConfig = { targetPort: port, delayMs: 25, maxBufferedBytes: 32 * 2 ** 20 };
      proxy = spawnChild('proxy', 'proxy.js', proxyCfg, o.verbose);
      proxyFailed = failureOf(proxy);
      proxyFailed.catch(() => {});
      const p = await Promise.race([proxy.next((m) => m.type === 'listening'), proxyFailed, timeout]);
      port = p.type === 'listening' ? p.port : 0;
    }
    const clientCfg: ClientConfig = { impl: entry.name, workload: w.id, params, maxChannels, port };
    client = spawnChild('client', 'client.js', clientCfg, o.verbose);
    const serverProc = server.proc;
    const clientPid = client.proc.pid;
    client.onMark = (phase) => {
      if (MARK_COMMAND.length > 0) {
        for (const pid of [clientPid, serverProc.pid]) {
          if (pid === undefined) continue;
          execFileSync(MARK_COMMAND[0]!, [...MARK_COMMAND.slice(1), phase === 'start' ? 'on' : 'off', String(pid)], {
            stdio: 'ignore',
          });
        }
      }
      if (serverProc.connected) serverProc.send({ type: 'cpu-mark', phase });
    };
    const clientFailed = failureOf(client);
    clientFailed.catch(() => {});
    const msg = await Promise.race([
      client.next((m) => m.type === 'result'),
      clientFailed,
      serverFailed,
      proxyFailed,
      timeout,
    ]);
    const result = (msg as { result: ClientResult }).result;
    Object.assign(record.figures, result.figures);
    record.notes.push(...result.notes);

    // Cross-check with the server's counters (and measure its memory for idle).
    server.proc.send({ type: 'stats', measure: !!w.measureServer });
    const s = await Promise.race([server.next((m) => m.type === 'stats'), serverFailed, timeout]);
    const stats = (s as { stats: ServerStats }).stats;
    verify(result, stats, record);
    if (w.cost) addCost(result, stats, record);
    if (w.measureServer && stats.memory) {
      const n = result.figures.channels ?? params.channels;
      record.figures.serverHeapB = (stats.memory.now.heapUsed - stats.memory.base.heapUsed) / n;
      record.figures.serverRssB = (stats.memory.now.rss - stats.memory.base.rss) / n;
    }
  } catch (err) {
    record.status = 'failed';
    if (err instanceof Timeout) {
      const where = client?.lastProgress ? ` (client: ${client.lastProgress})` : '';
      record.reason = `timeout after ${capSeconds} s${where}`;
    } else {
      record.reason = (err as Error).message;
    }
  } finally {
    clearTimeout(timer);
    await Promise.all([killChild(client), killChild(proxy), killChild(server)]);
  }
  record.seconds = (Date.now() - started) / 1000;
  return record;
}

/**
 * The CPU-cost figures: client + server CPU time (user + system) over the client's measured part, per cost
 * unit, in microseconds; and the server's share. Both processes' clocks run over the same marks (the server's
 * lag by one IPC hop, well under a millisecond, against runs of 100 ms and more).
 */
function addCost(result: ClientResult, stats: ServerStats, record: RunRecord): void {
  if (!result.cost || !stats.cpu) throw new Error('no CPU figures from the client or the server');
  const client = result.cost.client.userUs + result.cost.client.systemUs;
  const server = stats.cpu.userUs + stats.cpu.systemUs;
  if (!(result.cost.units > 0)) throw new Error('no work measured for the CPU cost');
  record.figures.cpuUs = (client + server) / result.cost.units;
  record.figures.cpuServerPct = (100 * server) / (client + server || 1);
  // Each process's user and system time per unit, kept in the JSON (not shown in the tables): where a ratio's
  // difference lies, in JavaScript and the runtime or in the kernel, and on which side.
  const units = result.cost.units;
  record.figures.cpuClientUserUs = result.cost.client.userUs / units;
  record.figures.cpuClientSystemUs = result.cost.client.systemUs / units;
  record.figures.cpuServerUserUs = stats.cpu.userUs / units;
  record.figures.cpuServerSystemUs = stats.cpu.systemUs / units;
  // What the harness spent making fresh blocks in the client (part of the figures above; bench/README.md).
  const harness = result.cost.harness;
  if (harness && harness.userUs + harness.systemUs > 0)
    record.figures.cpuClientHarnessUs = (harness.userUs + harness.systemUs) / units;
}

function verify(result: ClientResult, stats: ServerStats, record: RunRecord): void {
  const problems: string[] = [];
  const e = result.expect ?? {};
  if (e.echoChannels !== undefined && stats.echoChannels < e.echoChannels) {
    problems.push(`server saw ${stats.echoChannels} echo channels, client used ${e.echoChannels}`);
  }
  if (e.sinkChannels !== undefined && stats.sinkChannels < e.sinkChannels) {
    problems.push(`server saw ${stats.sinkChannels} sink channels, client used ${e.sinkChannels}`);
  }
  if (stats.sinkStampErrors > 0) problems.push(`server found ${stats.sinkStampErrors} corrupt block stamps`);
  if (problems.length) throw new Error(`verification: ${problems.join('; ')}`);
  if (stats.channelErrors > 0) {
    record.notes.push(`server: ${stats.channelErrors} channel errors (last: ${stats.lastChannelError})`);
  }
}

// ---- main ----

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  if (o.from) {
    const saved = JSON.parse(readFileSync(o.from, 'utf8')) as Report & { targets?: unknown };
    delete saved.targets;
    if (!o.svg && !o.markdown) throw new Error('--from needs --svg, --markdown or --report');
    writeOutputs(saved, o);
    return;
  }
  if (o.report && (o.quick || o.partial.length)) {
    console.warn(
      `warning: --report with ${[o.quick ? '--quick' : '', ...o.partial].filter(Boolean).join('; ')}: the document will say so`,
    );
  }
  const started = Date.now();
  const report: Report = {
    meta: {
      date: new Date().toISOString(),
      mode: o.quick ? 'quick' : 'full',
      node: process.version,
      platform: `${os.type()} ${os.release()} ${os.arch()}`,
      cpus: `${os.cpus().length} x ${os.cpus()[0]?.model ?? '?'}`,
      memoryGiB: Math.round(os.totalmem() / 2 ** 30),
      cpuModel: cpuModel(),
      cores: os.availableParallelism(),
      memory: `${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`,
      os: osName(),
      command: commandLine(),
      ...(o.partial.length ? { partial: o.partial.join('; ') } : {}),
    },
    workloads: [],
    runs: [],
  };
  console.log(
    `muxwire bench (${report.meta.mode}) on Node ${report.meta.node}, ${report.meta.cpus}, ${report.meta.platform}`,
  );
  console.log('client and server in separate processes over loopback TCP; ratios are to raw-tcp in this run\n');
  for (const w of o.workloads) {
    const repeats = o.repeats ?? (o.quick ? w.repeats.quick : w.repeats.full);
    const base = o.quick ? w.params.quick : w.params.full;
    const sizes = describeParams(
      w.id,
      o.channels !== undefined && base.channels > 2 ? { ...base, channels: o.channels } : base,
    );
    report.workloads.push({
      id: w.id,
      title: w.title,
      sizes:
        repeats > 1
          ? `${sizes}; each figure is the median of ${repeats} rounds, the implementations taking turns`
          : sizes,
      target: w.target,
      figures: w.figures,
    });
    const impls = o.impls.filter((entry) => entry.workloads === undefined || entry.workloads.includes(w.id));
    const rounds = new Map<string, RunRecord[]>(impls.map((entry) => [entry.name, []]));
    for (let round = 0; round < repeats; round++) {
      // Each round starts one implementation later, so none is always first (or always after a given one).
      const order = impls.map((_, i) => impls[(i + round) % impls.length]!);
      for (const entry of order) {
        const done = rounds.get(entry.name)!;
        // An implementation that failed or was skipped is not run again: its result is known.
        if (done.length > 0 && done[done.length - 1]!.status !== 'ok') continue;
        process.stderr.write(`  ${w.id} / ${entry.name}${repeats > 1 ? ` (round ${round + 1}/${repeats})` : ''} ... `);
        const r = await runOne(w, entry, o);
        done.push(r);
        process.stderr.write(
          `${r.status}${r.reason ? `: ${r.reason}` : ''}${r.seconds ? ` (${r.seconds.toFixed(1)} s)` : ''}\n`,
        );
        await new Promise((res) => setTimeout(res, 200)); // let the previous run's sockets settle
      }
    }
    for (const entry of impls) report.runs.push(mergeRounds(rounds.get(entry.name)!));
    console.log(formatText(report, w.id));
  }
  report.meta.duration = duration(Date.now() - started);
  writeOutputs(report, o);
}

const cleanup = (): void => {
  for (const p of live) p.kill('SIGKILL');
};
process.on('exit', cleanup);
process.on('SIGINT', () => {
  cleanup();
  process.exit(130);
});
process.on('SIGTERM', () => {
  cleanup();
  process.exit(143);
});

main().catch((err: unknown) => {
  console.error((err as Error).message);
  cleanup();
  process.exit(1);
});
