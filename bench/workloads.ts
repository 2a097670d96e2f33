// The workloads of docs/targets.md: sizes (full and --quick), time caps, and what each reports.
export const WORKLOAD_IDS = [
  'bulk-1',
  'bulk-cold',
  'bulk-100',
  'open-10k',
  'rr-1',
  'rr-100',
  'fairness',
  'idle',
  'long-fat',
] as const;
export type WorkloadId = (typeof WORKLOAD_IDS)[number];

export interface WorkloadParams {
  /** channels used at once */
  channels: number;
  /** bulk: 64 KiB blocks per channel */
  blocks: number;
  /** bulk: stop writing after this long and report what the server acknowledged (0 = no limit) */
  deadlineMs: number;
  /** bulk: the server acknowledges progress every this many blocks (0 = final ack only) */
  ackEveryBlocks: number;
  /** rr: measured round trips per channel */
  rounds: number;
  /** rr: unmeasured round trips per channel first */
  warmup: number;
  /** rr: and keep warming up for at least this long (the first second of a process is not steady) */
  warmupMs: number;
  /** fairness: round trips measured without the bulk channel */
  baselineRounds: number;
  /** idle / open: channels opened per batch (0 = all at once) */
  batch: number;
}

export interface FigureDef {
  key: string;
  label: string;
  /** which direction is better; 'none' for context figures */
  better: 'higher' | 'lower' | 'none';
  /** show impl / raw-tcp for this figure */
  ratio?: boolean;
  digits?: number;
  /** with several rounds, the table shows this figure's range beside its median (the first ratio figure's always) */
  spread?: boolean;
}

export interface WorkloadDef {
  id: WorkloadId;
  title: string;
  target: string;
  capSeconds: { full: number; quick: number };
  /**
   * Rounds per implementation (full, quick). Each figure is the median of its rounds, and the rounds of the
   * implementations alternate, so a drift of the shared machine touches every implementation alike. Short
   * runs (bulk transfers of under a second) swing the most and get the most rounds.
   */
  repeats: { full: number; quick: number };
  params: { full: WorkloadParams; quick: WorkloadParams };
  /** the client goes through the 25 ms-each-way delay proxy */
  proxy?: boolean;
  /** the server's memory per channel is measured after the client reports */
  measureServer?: boolean;
  figures: FigureDef[];
  /**
   * The CPU-cost unit: the runner adds `cpuUs` (client + server CPU time, user + system, per unit over the
   * measured part) and `cpuServerPct` (the server's share of it) to the figures.
   */
  cost?: 'MB' | 'channel' | 'round trip';
}

/** The CPU-cost figures of a workload with a cost unit, after its own. */
function costFigures(unit: 'MB' | 'channel' | 'round trip'): FigureDef[] {
  const short = unit === 'round trip' ? 'rt' : unit === 'channel' ? 'ch' : unit;
  return [
    {
      key: 'cpuUs',
      label: `CPU µs/${short}`,
      better: 'lower',
      ratio: true,
      digits: unit === 'MB' ? 0 : 1,
      spread: true,
    },
    { key: 'cpuServerPct', label: 'server % of CPU', better: 'none', digits: 0 },
  ];
}

const P = (p: Partial<WorkloadParams>): WorkloadParams => ({
  channels: 1,
  blocks: 0,
  deadlineMs: 0,
  ackEveryBlocks: 0,
  rounds: 0,
  warmup: 0,
  warmupMs: 0,
  baselineRounds: 0,
  batch: 0,
  ...p,
});

const MIB_BLOCKS = 16; // 64 KiB blocks per MiB

export const WORKLOADS: readonly WorkloadDef[] = [
  {
    id: 'bulk-1',
    title: 'bulk-1: one channel, 64 KiB writes, server acknowledges the total',
    target: '>= 0.90 x raw TCP, and >= 1.5 x the best other multiplexer',
    capSeconds: { full: 90, quick: 15 },
    repeats: { full: 5, quick: 1 },
    params: { full: P({ blocks: 512 * MIB_BLOCKS }), quick: P({ blocks: 128 * MIB_BLOCKS }) },
    cost: 'MB',
    figures: [{ key: 'MBps', label: 'MB/s', better: 'higher', ratio: true, digits: 0 }, ...costFigures('MB')],
  },
  {
    // A user's first benchmark (issue 16): Node's default sockets (no setNoDelay on either side), the same
    // 64 KiB Buffer written again and again (each write awaiting 'drain' when it returns false), the server
    // counting bytes in a plain 'data' listener and answering "ok" at the end; one round per process, so the
    // code runs cold (there is no warm-up). No stamps: the server checks only the byte count.
    id: 'bulk-cold',
    title: 'bulk-cold: one channel, the same 64 KiB Buffer again and again, default sockets, cold processes',
    target: '>= 0.90 x raw TCP; CPU per MB <= 1.15 x raw TCP',
    capSeconds: { full: 90, quick: 15 },
    repeats: { full: 5, quick: 1 },
    params: { full: P({ blocks: 256 * MIB_BLOCKS }), quick: P({ blocks: 128 * MIB_BLOCKS }) },
    cost: 'MB',
    figures: [{ key: 'MBps', label: 'MB/s', better: 'higher', ratio: true, digits: 0 }, ...costFigures('MB')],
  },
  {
    id: 'bulk-100',
    title: 'bulk-100: channels at once, aggregate throughput',
    target: '>= 0.90 x raw TCP with 100 sockets',
    capSeconds: { full: 90, quick: 15 },
    repeats: { full: 5, quick: 1 },
    params: { full: P({ channels: 100, blocks: 8 * MIB_BLOCKS }), quick: P({ channels: 100, blocks: 2 * MIB_BLOCKS }) },
    cost: 'MB',
    figures: [{ key: 'MBps', label: 'aggregate MB/s', better: 'higher', ratio: true, digits: 0 }, ...costFigures('MB')],
  },
  {
    id: 'open-10k',
    title: 'open-10k: channels opened at once, each writes "hello", server echoes, client reads and closes',
    target: '>= 3 x raw TCP (10,000 separate connections) and >= 3 x node:http2; no failures',
    capSeconds: { full: 90, quick: 15 },
    repeats: { full: 3, quick: 1 },
    params: { full: P({ channels: 10_000 }), quick: P({ channels: 2_000 }) },
    cost: 'channel',
    figures: [
      { key: 'perSec', label: 'channels/s', better: 'higher', ratio: true, digits: 0 },
      { key: 'channels', label: 'channels', better: 'none', digits: 0 },
      { key: 'warmPerSec', label: 'warm channels/s (2nd round)', better: 'higher', ratio: true, digits: 0 },
      ...costFigures('channel'),
    ],
  },
  {
    id: 'rr-1',
    title: 'rr-1: one channel, sequential 64-byte request/response round trips',
    target: 'p50 <= 1.15 x raw TCP; p99 <= 1.5 x raw TCP',
    capSeconds: { full: 90, quick: 15 },
    repeats: { full: 3, quick: 1 },
    params: {
      full: P({ rounds: 20_000, warmup: 1_000, warmupMs: 1_000 }),
      quick: P({ rounds: 5_000, warmup: 1_000, warmupMs: 500 }),
    },
    cost: 'round trip',
    figures: [
      { key: 'p50', label: 'p50 µs', better: 'lower', ratio: true, digits: 1 },
      { key: 'p99', label: 'p99 µs', better: 'lower', ratio: true, digits: 1 },
      ...costFigures('round trip'),
    ],
  },
  {
    id: 'rr-100',
    title: 'rr-100: 100 channels, round trips each, all at once',
    target: '>= 0.8 x raw TCP with 100 sockets',
    capSeconds: { full: 90, quick: 15 },
    repeats: { full: 3, quick: 1 },
    params: {
      full: P({ channels: 100, rounds: 2_000, warmup: 50, warmupMs: 1_000 }),
      quick: P({ channels: 100, rounds: 300, warmup: 20, warmupMs: 500 }),
    },
    cost: 'round trip',
    figures: [
      { key: 'rtPerSec', label: 'round trips/s', better: 'higher', ratio: true, digits: 0 },
      { key: 'p99', label: 'p99 µs', better: 'lower', ratio: true, digits: 0 },
      ...costFigures('round trip'),
    ],
  },
  {
    id: 'fairness',
    title: "fairness: rr-1's latency while another channel runs bulk on the same session",
    target: 'p99 during bulk <= 2 ms and <= 5 x p99 without bulk',
    capSeconds: { full: 90, quick: 15 },
    repeats: { full: 3, quick: 1 },
    params: {
      full: P({
        channels: 2,
        rounds: 20_000,
        warmup: 500,
        warmupMs: 1_000,
        baselineRounds: 5_000,
        ackEveryBlocks: MIB_BLOCKS,
      }),
      quick: P({
        channels: 2,
        rounds: 500,
        warmup: 200,
        warmupMs: 500,
        baselineRounds: 500,
        ackEveryBlocks: MIB_BLOCKS,
      }),
    },
    figures: [
      { key: 'p99Bulk', label: 'p99 during bulk µs', better: 'lower', ratio: true, digits: 0 },
      { key: 'p50Bulk', label: 'p50 during bulk µs', better: 'lower', digits: 0 },
      { key: 'p99Idle', label: 'p99 without bulk µs', better: 'lower', digits: 0 },
      { key: 'p99Factor', label: 'during / without', better: 'lower', digits: 1 },
      { key: 'bulkMBps', label: 'bulk MB/s meanwhile', better: 'none', digits: 0 },
    ],
  },
  {
    id: 'idle',
    title: 'idle: open idle channels, heap and RSS per channel on each side',
    target:
      '<= 1.5 KiB of heap per idle channel on each side (a bare Node Duplex is about 0.6 KiB); <= 0.6 KiB per idle LightChannel',
    capSeconds: { full: 300, quick: 20 },
    repeats: { full: 1, quick: 1 },
    params: { full: P({ channels: 100_000, batch: 1_000 }), quick: P({ channels: 10_000, batch: 1_000 }) },
    measureServer: true,
    figures: [
      { key: 'clientHeapB', label: 'client heap B/ch', better: 'lower', ratio: true, digits: 0 },
      { key: 'serverHeapB', label: 'server heap B/ch', better: 'lower', ratio: true, digits: 0 },
      { key: 'clientRssB', label: 'client RSS B/ch', better: 'lower', digits: 0 },
      { key: 'serverRssB', label: 'server RSS B/ch', better: 'lower', digits: 0 },
      { key: 'channels', label: 'channels', better: 'none', digits: 0 },
    ],
  },
  {
    id: 'long-fat',
    title: 'long-fat: bulk-1 through a user-space proxy adding 25 ms each way (50 ms RTT)',
    target: '>= 0.8 x raw TCP through the same proxy (a fixed 256 KiB window gives about 5 MB/s there)',
    capSeconds: { full: 60, quick: 15 },
    repeats: { full: 3, quick: 1 },
    params: {
      full: P({ blocks: 512 * MIB_BLOCKS, deadlineMs: 30_000, ackEveryBlocks: MIB_BLOCKS }),
      quick: P({ blocks: 64 * MIB_BLOCKS, deadlineMs: 8_000, ackEveryBlocks: MIB_BLOCKS }),
    },
    proxy: true,
    cost: 'MB',
    figures: [
      { key: 'MBps', label: 'MB/s', better: 'higher', ratio: true, digits: 1 },
      { key: 'MiB', label: 'MiB acked', better: 'none', digits: 0 },
      ...costFigures('MB'),
    ],
  },
];

/** The sizes of a run, in words, for the table heading. */
export function describeParams(id: WorkloadId, p: WorkloadParams): string {
  const mib = (blocks: number): string => `${(blocks / MIB_BLOCKS).toLocaleString('en-US')} MiB`;
  const n = (x: number): string => x.toLocaleString('en-US');
  switch (id) {
    case 'bulk-1':
      return `${mib(p.blocks)} on 1 channel`;
    case 'bulk-cold':
      return `${mib(p.blocks)} on 1 channel (one 64 KiB Buffer written ${n(p.blocks)} times), sockets without setNoDelay, fresh processes`;
    case 'bulk-100':
      return `${n(p.channels)} channels x ${mib(p.blocks)}`;
    case 'long-fat':
      return `${mib(p.blocks)} on 1 channel, 25 ms each way, stop after ${p.deadlineMs / 1000} s`;
    case 'open-10k':
      return `${n(p.channels)} channels in fresh processes (the target's figure), then ${n(p.channels)} more on the same session once warm`;
    case 'rr-1':
    case 'rr-100':
      return `${n(p.channels)} channel(s) x ${n(p.rounds)} round trips (after >= ${n(p.warmup)} and >= ${p.warmupMs / 1000} s of warm-up)`;
    case 'fairness':
      return `${n(p.rounds)} round trips during bulk, ${n(p.baselineRounds)} before it`;
    case 'idle':
      return `${n(p.channels)} channels, opened ${n(p.batch)} at a time`;
  }
}

export function findWorkload(id: string): WorkloadDef {
  const w = WORKLOADS.find((x) => x.id === id);
  if (!w) throw new Error(`unknown workload '${id}' (known: ${WORKLOAD_IDS.join(', ')})`);
  return w;
}

/** Channels a session must allow at once for this workload (passed to adapters as maxChannels). */
export function maxChannelsFor(params: WorkloadParams): number {
  return Math.max(params.channels, 2);
}
