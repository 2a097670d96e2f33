// Tables: plain text for the terminal; the rows also feed the Markdown document (document.ts) and the JSON.
import type { FigureDef, WorkloadId } from './workloads.js';
import { median } from './stats.js';

export interface RunRecord {
  workload: WorkloadId;
  impl: string;
  status: 'ok' | 'failed' | 'skipped';
  reason?: string;
  figures: Record<string, number>;
  /** figure key -> impl / raw-tcp */
  ratios?: Record<string, number>;
  notes: string[];
  seconds?: number;
  /** each round's figures, in the order run, when the workload ran more than one round */
  rounds?: Record<string, number>[];
}

export interface Report {
  meta: Record<string, string | number>;
  workloads: { id: WorkloadId; title: string; sizes: string; target: string; figures: FigureDef[] }[];
  runs: RunRecord[];
}

export const BASELINE = 'raw-tcp';

/**
 * One record from an implementation's rounds of a workload: each figure is the median of the rounds. A round
 * that failed fails the whole (a fast wrong answer must not hide behind good rounds); notes are kept once.
 */
export function mergeRounds(rounds: RunRecord[]): RunRecord {
  if (rounds.length === 1) return rounds[0]!;
  const first = rounds[0]!;
  const merged: RunRecord = { workload: first.workload, impl: first.impl, status: 'ok', figures: {}, notes: [] };
  merged.seconds = rounds.reduce((sum, r) => sum + (r.seconds ?? 0), 0);
  for (const r of rounds) for (const n of r.notes) if (!merged.notes.includes(n)) merged.notes.push(n);
  const bad = rounds.findIndex((r) => r.status !== 'ok');
  if (bad >= 0) {
    merged.status = rounds[bad]!.status;
    merged.reason = `round ${bad + 1} of ${rounds.length}: ${rounds[bad]!.reason ?? ''}`;
    return merged;
  }
  merged.rounds = rounds.map((r) => r.figures);
  for (const key of Object.keys(first.figures)) {
    merged.figures[key] = median(rounds.map((r) => r.figures[key]).filter((v): v is number => v !== undefined));
  }
  return merged;
}

export function fmt(v: number | undefined, digits = 0): string {
  if (v === undefined || !Number.isFinite(v)) return '-';
  return v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function statusText(r: RunRecord): string {
  if (r.status === 'ok') return 'ok';
  return `${r.status}: ${r.reason ?? ''}`;
}

/** Fills r.ratios for every run of the workload from the raw-tcp run beside it. */
export function computeRatios(report: Report, id: WorkloadId): void {
  const w = report.workloads.find((x) => x.id === id)!;
  const base = report.runs.find((r) => r.workload === id && r.impl === BASELINE && r.status === 'ok');
  for (const r of report.runs.filter((x) => x.workload === id)) {
    if (!base || r.status !== 'ok') continue;
    r.ratios = {};
    for (const f of w.figures.filter((x) => x.ratio)) {
      const a = r.figures[f.key];
      const b = base.figures[f.key];
      if (a !== undefined && b !== undefined && b !== 0) r.ratios[f.key] = a / b;
    }
  }
}

export function rows(
  report: Report,
  id: WorkloadId,
): { header: string[]; body: string[][]; notes: string[]; title: string; sizes: string; target: string } {
  computeRatios(report, id);
  const w = report.workloads.find((x) => x.id === id)!;
  const ratioFigs = w.figures.filter((f) => f.ratio);
  const runs = report.runs.filter((x) => x.workload === id);
  // With rounds, the spread of the main figure (and of the CPU cost) is shown beside its median.
  const roundCount = Math.max(0, ...runs.map((r) => r.rounds?.length ?? 0));
  const spreads = new Set(roundCount > 1 ? w.figures.filter((f) => f === ratioFigs[0] || f.spread) : []);
  const header = [
    'implementation',
    ...w.figures.flatMap((f) =>
      spreads.has(f)
        ? [`${f.label} (median)`, `${f.label.replace(/ µs$/, '')} range, ${roundCount} rounds`]
        : [f.label],
    ),
    `vs ${BASELINE}${ratioFigs.length > 1 ? ` (${ratioFigs.map((f) => f.label.replace(/ µs$/, '')).join(' / ')})` : ''}`,
    'status',
  ];
  const range = (r: RunRecord, spread: FigureDef): string => {
    const values = (r.rounds ?? []).map((f) => f[spread.key]).filter((v): v is number => v !== undefined);
    if (r.status !== 'ok' || values.length === 0) return '-';
    return `${fmt(Math.min(...values), spread.digits)}–${fmt(Math.max(...values), spread.digits)}`;
  };
  const body: string[][] = [];
  const notes: string[] = [];
  for (const r of runs) {
    const ratio = ratioFigs
      .map((f) => (r.ratios?.[f.key] !== undefined ? `${r.ratios[f.key]!.toFixed(2)}x` : '-'))
      .join(' / ');
    const figure = (f: FigureDef): string => (r.status === 'ok' ? fmt(r.figures[f.key], f.digits) : '-');
    body.push([
      r.impl,
      ...w.figures.flatMap((f) => (spreads.has(f) ? [figure(f), range(r, f)] : [figure(f)])),
      r.status === 'ok' ? ratio : '-',
      statusText(r),
    ]);
    for (const n of r.notes) notes.push(`${r.impl}: ${n}`);
  }
  return { header, body, notes, title: w.title, sizes: w.sizes, target: w.target };
}

export function formatText(report: Report, id: WorkloadId): string {
  const { header, body, notes, title, sizes, target } = rows(report, id);
  const widths = header.map((h, i) =>
    Math.max(h.length, ...body.map((r) => (i === header.length - 1 ? 0 : r[i]!.length))),
  );
  const line = (cells: string[]): string =>
    cells
      .map((c, i) =>
        i === 0 || i === cells.length - 1 ? c.padEnd(i === cells.length - 1 ? 0 : widths[i]!) : c.padStart(widths[i]!),
      )
      .join('  ')
      .trimEnd();
  const out = [
    `== ${title}`,
    `   sizes: ${sizes}`,
    `   target: ${target}`,
    line(header),
    line(widths.map((w) => '-'.repeat(w))),
    ...body.map(line),
  ];
  for (const n of notes) out.push(`   note: ${n}`);
  return out.join('\n') + '\n';
}

export function mdEscape(s: string): string {
  return s.replace(/\|/g, '\\|');
}
