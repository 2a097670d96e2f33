// The targets of docs/targets.md in checkable form, and the measures the chart and the headline table show.
// A measure is one figure of one workload, shown for every implementation either as its ratio to raw TCP
// in the same run or, where raw TCP is no fair yardstick (fairness, idle memory), as the figure itself.
import { BASELINE, type Report, type RunRecord } from './report.js';
import type { WorkloadId } from './workloads.js';
import { REFERENCES } from './impl/index.js';

export { BASELINE };
export const SUBJECT = 'muxwire';
/** muxwire again, with `LightChannel`s instead of Node `Duplex` channels: judged against the same targets. */
export const LIGHT_SUBJECT = 'muxwire-light';
/** The implementations that are muxwire (never "another multiplexer"). */
export const SUBJECTS: readonly string[] = [SUBJECT, LIGHT_SUBJECT];
/** muxwire's libp2p muxer: judged against libp2p's yamux (docs/libp2p.md), never "another multiplexer". */
export const LIBP2P_SUBJECT = 'muxwire-libp2p';

export interface Measure {
  id: string;
  workload: WorkloadId;
  /** short title, e.g. "bulk-1 throughput" */
  title: string;
  /** figure key in RunRecord.figures */
  figure: string;
  better: 'higher' | 'lower';
  /** bars: 'ratio' = the figure / raw TCP's figure in the same run; 'absolute' = the figure in `unit` */
  axis: 'ratio' | 'absolute';
  /** display unit of the figure after `scale` */
  unit: string;
  /** figure x scale = value in `unit` */
  scale: number;
  digits: number;
  /** why the bars are not ratios (absolute axis only) */
  axisNote?: string;
  targets: Target[];
}

/** Everything a target needs to judge one workload of one report. */
export interface Context {
  measure: Measure;
  runs: RunRecord[];
  /** whose targets are judged: muxwire unless given */
  subject?: string;
}

export interface Target {
  /** as written in targets.md */
  text: string;
  /** a shorter wording for the chart */
  short: string;
  /** muxwire's bar must be >= or <= the line */
  op?: '>=' | '<=';
  /** the bound in axis units for this run (a ratio, or the figure in `unit`), and its chart label */
  line?(ctx: Context): { value: number; label: string } | undefined;
  /** a check that is no bound on the bar (e.g. "no failures") */
  check?(ctx: Context): boolean | undefined;
  /** judged for this subject alone (a target of light channels: targets.md's "idle, light channels") */
  only?: string;
}

/** The targets of `m` that judge `subject`. */
export function targetsFor(m: Measure, subject: string): Target[] {
  return m.targets.filter((t) => t.only === undefined || t.only === subject);
}

export interface TargetResult {
  measure: string;
  workload: WorkloadId;
  target: string;
  short: string;
  op?: '>=' | '<=';
  /** the subject's value in axis units (undefined when it has none) */
  value?: number;
  threshold?: number;
  /** what the threshold was made of, e.g. "1.5 x http2" */
  thresholdLabel?: string;
  met: boolean | undefined;
  /** one line for tables: "0.62x >= 0.90x: missed" */
  detail: string;
  /** whose value it is (muxwire, or muxwire with light channels); set in the JSON's list */
  subject?: string;
}

// ---- values ----

export function runOf(runs: RunRecord[], impl: string): RunRecord | undefined {
  return runs.find((r) => r.impl === impl);
}

/** The figure in the measure's display unit, or undefined when the run failed or lacks it. */
export function displayValue(m: Measure, r: RunRecord | undefined): number | undefined {
  if (r?.status !== 'ok') return undefined;
  const v = r.figures[m.figure];
  return v === undefined || !Number.isFinite(v) ? undefined : v * m.scale;
}

/** The bar's length: ratio to raw TCP, or the display value. */
export function axisValue(m: Measure, r: RunRecord | undefined, runs: RunRecord[]): number | undefined {
  const v = displayValue(m, r);
  if (v === undefined || m.axis === 'absolute') return v;
  const base = displayValue(m, runOf(runs, BASELINE));
  return base === undefined || base === 0 ? undefined : v / base;
}

/** The best run among the other multiplexers (every implementation but raw TCP, muxwire and the yardsticks). */
export function bestOther(m: Measure, runs: RunRecord[]): { run: RunRecord; value: number } | undefined {
  let best: { run: RunRecord; value: number } | undefined;
  for (const r of runs) {
    if (r.impl === BASELINE || SUBJECTS.includes(r.impl) || r.impl === LIBP2P_SUBJECT || REFERENCES.has(r.impl))
      continue;
    const v = displayValue(m, r);
    if (v === undefined) continue;
    if (!best || (m.better === 'higher' ? v > best.value : v < best.value)) best = { run: r, value: v };
  }
  return best;
}

// ---- target builders ----

const fmtNum = (v: number, digits: number): string =>
  v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });

function bound(op: '>=' | '<=', value: number, text: string, label: string, short: string): Target {
  return { text, short, op, line: () => ({ value, label }) };
}

/** targets.md's bound on an idle light channel (0.6 KiB), judged for light channels alone. */
function lightIdle(side: 'client' | 'server'): Target {
  return {
    ...bound(
      '<=',
      0.6,
      `<= 0.6 KiB per idle LightChannel (${side})`,
      '0.6 KiB',
      `light ${side} heap <= 0.6 KiB/channel`,
    ),
    only: LIGHT_SUBJECT,
  };
}

/** k x another implementation's figure, in axis units. */
function timesImpl(op: '>=' | '<=', k: number, impl: string, text: string, short: string): Target {
  return {
    text,
    short,
    op,
    line(ctx) {
      const v = axisValue(ctx.measure, runOf(ctx.runs, impl), ctx.runs);
      return v === undefined ? undefined : { value: k * v, label: `${k} x ${impl}` };
    },
  };
}

function timesBestOther(op: '>=' | '<=', k: number, text: string, short: string): Target {
  return {
    text,
    short,
    op,
    line(ctx) {
      const best = bestOther(ctx.measure, ctx.runs);
      if (!best) return undefined;
      const v = axisValue(ctx.measure, best.run, ctx.runs);
      return v === undefined ? undefined : { value: k * v, label: `${k} x ${best.run.impl}` };
    },
  };
}

const noFailures: Target = {
  text: 'no failures',
  short: 'no failures',
  check: (ctx) => runOf(ctx.runs, ctx.subject ?? SUBJECT)?.status === 'ok',
};

// ---- the measures ----

export const MEASURES: readonly Measure[] = [
  {
    id: 'bulk-1',
    workload: 'bulk-1',
    title: 'bulk-1 throughput',
    figure: 'MBps',
    better: 'higher',
    axis: 'ratio',
    unit: 'MB/s',
    scale: 1,
    digits: 0,
    targets: [
      bound('>=', 0.9, '>= 0.90 x raw TCP', '0.90', 'throughput >= 0.90 x raw TCP'),
      timesBestOther('>=', 1.5, '>= 1.5 x the best other multiplexer', '>= 1.5 x best other multiplexer'),
    ],
  },
  {
    id: 'bulk-1-cpu',
    workload: 'bulk-1',
    title: 'bulk-1 CPU per MB',
    figure: 'cpuUs',
    better: 'lower',
    axis: 'ratio',
    unit: 'µs/MB',
    scale: 1,
    digits: 0,
    targets: [bound('<=', 1.15, 'CPU per MB <= 1.15 x raw TCP (issue 16)', '1.15', 'CPU/MB <= 1.15 x raw TCP')],
  },
  {
    id: 'bulk-cold',
    workload: 'bulk-cold',
    title: 'bulk-cold throughput',
    figure: 'MBps',
    better: 'higher',
    axis: 'ratio',
    unit: 'MB/s',
    scale: 1,
    digits: 0,
    targets: [bound('>=', 0.9, '>= 0.90 x raw TCP (issue 16)', '0.90', 'throughput >= 0.90 x raw TCP')],
  },
  {
    id: 'bulk-cold-cpu',
    workload: 'bulk-cold',
    title: 'bulk-cold CPU per MB',
    figure: 'cpuUs',
    better: 'lower',
    axis: 'ratio',
    unit: 'µs/MB',
    scale: 1,
    digits: 0,
    targets: [bound('<=', 1.15, 'CPU per MB <= 1.15 x raw TCP (issue 16)', '1.15', 'CPU/MB <= 1.15 x raw TCP')],
  },
  {
    id: 'bulk-100',
    workload: 'bulk-100',
    title: 'bulk-100 aggregate throughput',
    figure: 'MBps',
    better: 'higher',
    axis: 'ratio',
    unit: 'MB/s',
    scale: 1,
    digits: 0,
    targets: [bound('>=', 0.9, '>= 0.90 x raw TCP with 100 sockets', '0.90', 'throughput >= 0.90 x raw TCP')],
  },
  {
    id: 'open-10k',
    workload: 'open-10k',
    title: 'open-10k channels opened/s',
    figure: 'perSec',
    better: 'higher',
    axis: 'ratio',
    unit: 'ch/s',
    scale: 1,
    digits: 0,
    targets: [
      bound('>=', 3, '>= 3 x raw TCP (separate connections)', '3', 'opens/s >= 3 x raw TCP'),
      timesImpl('>=', 3, 'http2', '>= 3 x node:http2', 'opens/s >= 3 x node:http2'),
      noFailures,
    ],
  },
  {
    id: 'open-10k-cpu',
    workload: 'open-10k',
    title: 'open-10k CPU per channel',
    figure: 'cpuUs',
    better: 'lower',
    axis: 'ratio',
    unit: 'µs/ch',
    scale: 1,
    digits: 1,
    targets: [
      bound(
        '<=',
        0.33,
        'CPU per channel opened <= 0.33 x raw TCP per connection (issue 16)',
        '0.33',
        'CPU/channel <= 0.33 x raw TCP',
      ),
    ],
  },
  {
    id: 'rr-1-p50',
    workload: 'rr-1',
    title: 'rr-1 latency p50',
    figure: 'p50',
    better: 'lower',
    axis: 'ratio',
    unit: 'µs',
    scale: 1,
    digits: 1,
    targets: [bound('<=', 1.15, 'p50 <= 1.15 x raw TCP', '1.15', 'p50 <= 1.15 x raw TCP')],
  },
  {
    id: 'rr-1-p99',
    workload: 'rr-1',
    title: 'rr-1 latency p99',
    figure: 'p99',
    better: 'lower',
    axis: 'ratio',
    unit: 'µs',
    scale: 1,
    digits: 1,
    targets: [bound('<=', 1.5, 'p99 <= 1.5 x raw TCP', '1.5', 'p99 <= 1.5 x raw TCP')],
  },
  {
    id: 'rr-100',
    workload: 'rr-100',
    title: 'rr-100 round trips/s',
    figure: 'rtPerSec',
    better: 'higher',
    axis: 'ratio',
    unit: 'rt/s',
    scale: 1,
    digits: 0,
    targets: [bound('>=', 0.8, '>= 0.8 x raw TCP with 100 sockets', '0.8', 'round trips/s >= 0.8 x raw TCP')],
  },
  {
    id: 'fairness-p99',
    workload: 'fairness',
    title: 'fairness: p99 during bulk',
    figure: 'p99Bulk',
    better: 'lower',
    axis: 'absolute',
    unit: 'ms',
    scale: 1 / 1000,
    digits: 2,
    axisNote: 'raw TCP runs the two channels on two sockets',
    targets: [bound('<=', 2, 'p99 during bulk <= 2 ms', '2 ms', 'p99 during bulk <= 2 ms')],
  },
  {
    id: 'fairness-factor',
    workload: 'fairness',
    title: 'fairness: p99 with / without bulk',
    figure: 'p99Factor',
    better: 'lower',
    axis: 'absolute',
    unit: 'x',
    scale: 1,
    digits: 1,
    axisNote: 'a ratio within each run',
    targets: [bound('<=', 5, 'p99 during bulk <= 5 x p99 without bulk', '5 x', 'p99 with bulk <= 5 x without')],
  },
  {
    id: 'idle-client',
    workload: 'idle',
    title: 'idle: client heap/channel',
    figure: 'clientHeapB',
    better: 'lower',
    axis: 'absolute',
    unit: 'KiB',
    scale: 1 / 1024,
    digits: 2,
    axisNote: 'the target is absolute',
    targets: [
      bound('<=', 1.5, '<= 1.5 KiB of heap per idle channel (client)', '1.5 KiB', 'client heap <= 1.5 KiB/channel'),
      lightIdle('client'),
    ],
  },
  {
    id: 'idle-server',
    workload: 'idle',
    title: 'idle: server heap/channel',
    figure: 'serverHeapB',
    better: 'lower',
    axis: 'absolute',
    unit: 'KiB',
    scale: 1 / 1024,
    digits: 2,
    axisNote: 'the target is absolute',
    targets: [
      bound('<=', 1.5, '<= 1.5 KiB of heap per idle channel (server)', '1.5 KiB', 'server heap <= 1.5 KiB/channel'),
      lightIdle('server'),
    ],
  },
  {
    id: 'long-fat',
    workload: 'long-fat',
    title: 'long-fat throughput (50 ms RTT)',
    figure: 'MBps',
    better: 'higher',
    axis: 'ratio',
    unit: 'MB/s',
    scale: 1,
    digits: 1,
    targets: [bound('>=', 0.8, '>= 0.8 x raw TCP through the same proxy', '0.8', 'throughput >= 0.8 x raw TCP')],
  },
];

/** The measures of the workloads present in the report, in MEASURES order. */
export function measuresOf(report: Report): Measure[] {
  const ids = new Set(report.workloads.map((w) => w.id));
  return MEASURES.filter((m) => ids.has(m.workload));
}

export function contextOf(report: Report, m: Measure): Context {
  return { measure: m, runs: report.runs.filter((r) => r.workload === m.workload) };
}

/** Formats a value in axis units: "0.62x" for ratios, "1.02 KiB" for absolute figures. */
export function formatAxis(m: Measure, v: number | undefined): string {
  if (v === undefined || !Number.isFinite(v)) return '-';
  if (m.axis === 'ratio') return `${fmtNum(v, 2)}x`;
  return m.unit === 'x' ? `${fmtNum(v, m.digits)}x` : `${fmtNum(v, m.digits)} ${m.unit}`;
}

/** Formats a display value: "659 MB/s". */
export function formatDisplay(m: Measure, v: number | undefined): string {
  if (v === undefined || !Number.isFinite(v)) return '-';
  return m.unit === 'x' ? `${fmtNum(v, m.digits)}x` : `${fmtNum(v, m.digits)} ${m.unit}`;
}

export function evaluate(ctx: Context, t: Target): TargetResult {
  const m = ctx.measure;
  const subjectName = ctx.subject ?? SUBJECT;
  const subject = runOf(ctx.runs, subjectName);
  const value = axisValue(m, subject, ctx.runs);
  const base: Omit<TargetResult, 'met' | 'detail'> = {
    measure: m.id,
    workload: m.workload,
    target: t.text,
    short: t.short,
  };
  if (t.op) base.op = t.op;
  if (value !== undefined) base.value = value;
  const why = !subject
    ? `${subjectName} not run`
    : subject.status !== 'ok'
      ? `${subjectName} ${subject.status}`
      : undefined;
  if (t.check) {
    const met = t.check(ctx);
    return { ...base, met, detail: met === undefined ? 'unknown' : met ? 'met' : `missed${why ? ` (${why})` : ''}` };
  }
  const line = t.line?.(ctx);
  if (line) {
    base.threshold = line.value;
    base.thresholdLabel = line.label;
  }
  if (value === undefined || !line) {
    // muxwire failing is a miss; a missing baseline leaves the target undecided.
    const met = subject && subject.status !== 'ok' ? false : undefined;
    const reason =
      why ??
      (m.axis === 'ratio' && !displayValue(m, runOf(ctx.runs, BASELINE)) ? 'no raw TCP figure' : 'no baseline figure');
    return { ...base, met, detail: `${met === false ? 'missed' : 'unknown'} (${reason})` };
  }
  const met = t.op === '<=' ? value <= line.value : value >= line.value;
  const op = t.op === '<=' ? '<=' : '>=';
  const detail = met
    ? `met: ${formatAxis(m, value)} ${op} ${formatAxis(m, line.value)}`
    : `missed: ${formatAxis(m, value)}, needs ${op} ${formatAxis(m, line.value)}`;
  return { ...base, met, detail };
}

/** Every target of every measure in the report. */
export function evaluateAll(report: Report): TargetResult[] {
  const out: TargetResult[] = [];
  for (const m of measuresOf(report)) {
    const ctx = contextOf(report, m);
    for (const subject of SUBJECTS) {
      if (subject !== SUBJECT && !runOf(ctx.runs, subject)) continue;
      for (const t of targetsFor(m, subject)) out.push({ ...evaluate({ ...ctx, subject }, t), subject });
    }
  }
  return out;
}
