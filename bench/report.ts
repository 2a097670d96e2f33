// Tables: plain text for the terminal; the rows also feed the Markdown document (document.ts) and the JSON.
import type { FigureDef, WorkloadId } from './workloads.js';

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
}

export interface Report {
  meta: Record<string, string | number>;
  workloads: { id: WorkloadId; title: string; sizes: string; target: string; figures: FigureDef[] }[];
  runs: RunRecord[];
}

export const BASELINE = 'raw-tcp';

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

export function rows(report: Report, id: WorkloadId): { header: string[]; body: string[][]; notes: string[]; title: string; sizes: string; target: string } {
  computeRatios(report, id);
  const w = report.workloads.find((x) => x.id === id)!;
  const ratioFigs = w.figures.filter((f) => f.ratio);
  const header = [
    'implementation',
    ...w.figures.map((f) => f.label),
    `vs ${BASELINE}${ratioFigs.length > 1 ? ` (${ratioFigs.map((f) => f.label.replace(/ µs$/, '')).join(' / ')})` : ''}`,
    'status',
  ];
  const body: string[][] = [];
  const notes: string[] = [];
  for (const r of report.runs.filter((x) => x.workload === id)) {
    const ratio = ratioFigs.map((f) => (r.ratios?.[f.key] !== undefined ? `${r.ratios[f.key]!.toFixed(2)}x` : '-')).join(' / ');
    body.push([r.impl, ...w.figures.map((f) => (r.status === 'ok' ? fmt(r.figures[f.key], f.digits) : '-')), r.status === 'ok' ? ratio : '-', statusText(r)]);
    for (const n of r.notes) notes.push(`${r.impl}: ${n}`);
  }
  return { header, body, notes, title: w.title, sizes: w.sizes, target: w.target };
}

export function formatText(report: Report, id: WorkloadId): string {
  const { header, body, notes, title, sizes, target } = rows(report, id);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => (i === header.length - 1 ? 0 : r[i]!.length))));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (i === 0 || i === cells.length - 1 ? c.padEnd(i === cells.length - 1 ? 0 : widths[i]!) : c.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  const out = [`== ${title}`, `   sizes: ${sizes}`, `   target: ${target}`, line(header), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)];
  for (const n of notes) out.push(`   note: ${n}`);
  return out.join('\n') + '\n';
}

export function mdEscape(s: string): string {
  return s.replace(/\|/g, '\\|');
}
