// The benchmark chart: one panel per measure (see targets.ts), one horizontal bar per implementation,
// the targets as dashed lines, failed and skipped runs named in place of their bar. Plain SVG, written
// by hand so that the bench needs no charting dependency; text widths are estimated (no font metrics).
import type { Report, RunRecord } from './report.js';
import { median } from './stats.js';
import {
  BASELINE,
  SUBJECT,
  SUBJECTS,
  axisValue,
  contextOf,
  displayValue,
  evaluate,
  formatAxis,
  formatDisplay,
  measuresOf,
  targetsFor,
  type Measure,
  type TargetResult,
} from './targets.js';

const FONT = "'DejaVu Sans', 'Helvetica Neue', Helvetica, Arial, sans-serif";
const COLOR = {
  text: '#1f2328',
  muted: '#59636e',
  faint: '#8c959f',
  grid: '#e6e8eb',
  border: '#d0d7de',
  panel: '#ffffff',
  background: '#f6f8fa',
  subject: '#0969da',
  baseline: '#8c959f',
  other: '#a9c4e4',
  target: '#bc4c00',
  failed: '#cf222e',
  met: '#1a7f37',
};

const WIDTH = 1040;
const MARGIN = 20;
const GAP = 20;
const COLUMNS = 2;
const PANEL_W = (WIDTH - 2 * MARGIN - (COLUMNS - 1) * GAP) / COLUMNS;
const PAD = 14;
const LABEL_W = 92;
const VALUE_W = 132;
const ROW_H = 19;
const BAR_H = 13;
const BAND_H = 14; // one row of target labels

/** Estimated advance of a string in the chart font (close to DejaVu Sans; a little generous elsewhere). */
function textWidth(s: string, size: number, bold = false): number {
  let w = 0;
  for (const ch of s) {
    w += /[il.,:;'|!· ]/.test(ch)
      ? 0.32
      : /[frtj()[\]/-]/.test(ch)
        ? 0.42
        : /[mwMW@%]/.test(ch)
          ? 0.95
          : /[A-Z≥≤×✓✗]/.test(ch)
            ? 0.76
            : /[0-9]/.test(ch)
              ? 0.64
              : 0.61;
  }
  return w * size * (bold ? 1.1 : 1);
}

function truncate(s: string, size: number, width: number): string {
  if (textWidth(s, size) <= width) return s;
  let out = s;
  while (out.length > 1 && textWidth(`${out}…`, size) > width) out = out.slice(0, -1);
  return `${out.trimEnd()}…`;
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

const r1 = (v: number): string => (Math.round(v * 10) / 10).toString();

interface TextOpts {
  size?: number;
  fill?: string;
  anchor?: 'start' | 'middle' | 'end';
  weight?: 'bold' | 'normal';
  style?: 'italic';
  /** a background-coloured box behind the text, so that it stays legible over the target lines */
  boxed?: boolean;
}

function text(x: number, y: number, s: string, o: TextOpts = {}): string {
  const attrs = [
    `x="${r1(x)}"`,
    `y="${r1(y)}"`,
    `font-size="${o.size ?? 11}"`,
    `fill="${o.fill ?? COLOR.text}"`,
    o.anchor && o.anchor !== 'start' ? `text-anchor="${o.anchor}"` : '',
    o.weight === 'bold' ? 'font-weight="bold"' : '',
    o.style ? `font-style="${o.style}"` : '',
  ].filter(Boolean);
  const t = `<text ${attrs.join(' ')}>${esc(s)}</text>`;
  if (!o.boxed) return t;
  const size = o.size ?? 11;
  const w = textWidth(s, size, o.weight === 'bold');
  const x0 = o.anchor === 'end' ? x - w : o.anchor === 'middle' ? x - w / 2 : x;
  return `<rect x="${r1(x0 - 2)}" y="${r1(y - size * 0.85)}" width="${r1(w + 4)}" height="${r1(size * 1.15)}" fill="${COLOR.panel}" fill-opacity="0.9"/>${t}`;
}

/** A "nice" axis: 0 .. max in 3-6 steps of 1, 2, 2.5 or 5 x 10^k. */
function niceAxis(max: number): { max: number; step: number } {
  if (!(max > 0)) return { max: 1, step: 0.25 };
  const raw = max / 4;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((k) => k * mag).find((s) => max / s <= 5) ?? 10 * mag;
  return { max: Math.ceil(max / step - 1e-9) * step, step };
}

function fmtTick(v: number, step: number): string {
  let digits = 0;
  while (digits < 4 && Math.abs(Math.round(step * 10 ** digits) - step * 10 ** digits) > 1e-9) digits++;
  return v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function barColor(impl: string): string {
  return SUBJECTS.includes(impl) ? COLOR.subject : impl === BASELINE ? COLOR.baseline : COLOR.other;
}

interface Line {
  value: number;
  label: string;
  met?: boolean;
}

/** One panel; returns its SVG and height. */
function panel(
  measure: Measure,
  runs: RunRecord[],
  results: TargetResult[],
  x: number,
  y: number,
): { svg: string; height: number } {
  // Without a raw TCP figure there are no ratios: show the figures themselves, and no target lines.
  const noBase =
    measure.axis === 'ratio' &&
    displayValue(
      measure,
      runs.find((r) => r.impl === BASELINE),
    ) === undefined;
  const m: Measure = noBase
    ? { ...measure, axis: 'absolute', axisNote: 'no raw TCP figure in this run, so no ratios' }
    : measure;
  const ctx = { measure: m, runs };
  const out: string[] = [];
  const values = runs.map((r) => axisValue(m, r, runs));
  const lines: Line[] = [];
  for (const t of noBase ? [] : targetsFor(m, SUBJECT)) {
    const l = t.line?.(ctx);
    if (l) lines.push({ value: l.value, label: `${t.op === '<=' ? '≤' : '≥'} ${l.label.replace(/ x /g, ' × ')}` });
  }

  // Scale: everything in view unless one bar dwarfs the rest (then it is cut and marked).
  const known = values.filter((v): v is number => v !== undefined);
  const ref = Math.max(
    ...lines.map((l) => l.value),
    ...known.filter((_, i) => [BASELINE, SUBJECT].includes(runs[i]!.impl)),
    known.length ? median(known) : 0,
    0,
  );
  let top = Math.max(...known, ...lines.map((l) => l.value), 0);
  if (ref > 0 && top > 3 * ref) top = 2.5 * ref;
  const axis = niceAxis(top * 1.02);

  const plotX = x + PAD + LABEL_W + 8;
  const plotW = PANEL_W - 2 * PAD - LABEL_W - 8 - VALUE_W;
  const sx = (v: number): number => plotX + (Math.min(v, axis.max) / axis.max) * plotW;

  // Heading: title, muxwire's verdict, what the bars are.
  const measureResults = results.filter((r) => r.measure === m.id);
  const decided = measureResults.filter((r) => r.met !== undefined);
  const allMet = decided.length > 0 && decided.every((r) => r.met);
  const verdict = decided.length === 0 ? 'target undecided' : allMet ? 'muxwire meets target' : 'muxwire misses target';
  const verdictColor = decided.length === 0 ? COLOR.muted : allMet ? COLOR.met : COLOR.failed;
  const verdictText = `${allMet ? '✓' : decided.length ? '✗' : '?'} ${verdict}`;
  out.push(
    text(x + PAD, y + 22, truncate(m.title, 14, PANEL_W - 2 * PAD - textWidth(verdictText, 11) - 12), {
      size: 14,
      weight: 'bold',
    }),
  );
  out.push(
    text(x + PANEL_W - PAD, y + 22, verdictText, { size: 11, weight: 'bold', fill: verdictColor, anchor: 'end' }),
  );
  const what =
    m.axis === 'ratio'
      ? `× raw TCP in the same run (${m.unit})`
      : `${m.unit === 'x' ? 'factor' : m.unit}${m.axisNote ? `; ${m.axisNote}` : ''}`;
  out.push(text(x + PAD, y + 40, `${what} · ${m.better} is better`, { size: 11, fill: COLOR.muted }));

  // Target labels: one band, a second one when two labels would collide.
  lines.sort((a, b) => a.value - b.value);
  const placed: { x0: number; x1: number; row: number }[] = [];
  const labelRows: number[] = [];
  for (const l of lines) {
    const w = textWidth(l.label, 10, true);
    const cx = sx(l.value);
    const clamp = (x0: number): number => Math.max(plotX - LABEL_W / 2, Math.min(x0, plotX + plotW + VALUE_W - w));
    // Centred on its line, else ending at it, else starting at it; a second row when none fits.
    const candidates = [cx - w / 2, cx - w + 3, cx - 3].map(clamp);
    const free = (x0: number, row: number): boolean =>
      !placed.some((p) => p.row === row && x0 < p.x1 + 6 && x0 + w > p.x0 - 6);
    let row = 0;
    let x0: number | undefined;
    for (; x0 === undefined; row++) x0 = candidates.find((c) => free(c, row));
    row--;
    placed.push({ x0, x1: x0 + w, row });
    labelRows.push(row);
  }
  const bands = lines.length === 0 ? 0 : Math.max(...labelRows) + 1;
  const barsTop = y + 50 + bands * BAND_H + 4;
  const barsBottom = barsTop + runs.length * ROW_H;

  // Grid and ticks.
  for (let v = 0; v <= axis.max + 1e-9; v += axis.step) {
    const gx = sx(v);
    out.push(
      `<line x1="${r1(gx)}" y1="${r1(barsTop - 2)}" x2="${r1(gx)}" y2="${r1(barsBottom + 2)}" stroke="${v === 0 ? COLOR.faint : COLOR.grid}" stroke-width="1"/>`,
    );
    out.push(text(gx, barsBottom + 15, fmtTick(v, axis.step), { size: 10, fill: COLOR.muted, anchor: 'middle' }));
  }
  if (m.axis === 'ratio' && axis.max >= 1) {
    // raw TCP's own level, for reference
    out.push(
      `<line x1="${r1(sx(1))}" y1="${r1(barsTop - 2)}" x2="${r1(sx(1))}" y2="${r1(barsBottom + 2)}" stroke="${COLOR.faint}" stroke-width="1" stroke-dasharray="2 3"/>`,
    );
  }

  // Bars; their labels go on top of the target lines.
  const labels: string[] = [];
  runs.forEach((r, i) => {
    const rowY = barsTop + i * ROW_H;
    const cy = rowY + ROW_H / 2;
    const isSubject = SUBJECTS.includes(r.impl);
    labels.push(text(plotX - 8, cy + 4, r.impl, { size: 11, anchor: 'end', weight: isSubject ? 'bold' : 'normal' }));
    const v = values[i];
    if (r.status !== 'ok' || v === undefined) {
      const msg =
        r.status === 'ok'
          ? m.axis === 'ratio'
            ? 'no raw TCP figure to compare with'
            : 'no figure'
          : `${r.status}: ${r.reason ?? ''}`;
      const color = r.status === 'failed' ? COLOR.failed : COLOR.muted;
      if (r.status === 'failed') {
        out.push(
          `<rect x="${r1(plotX)}" y="${r1(cy - BAR_H / 2)}" width="${BAR_H}" height="${BAR_H}" fill="none" stroke="${COLOR.failed}" stroke-width="1.2"/>`,
        );
        out.push(
          `<path d="M${r1(plotX + 3)} ${r1(cy - BAR_H / 2 + 3)}l${BAR_H - 6} ${BAR_H - 6}m0 ${-(BAR_H - 6)}l${-(BAR_H - 6)} ${BAR_H - 6}" stroke="${COLOR.failed}" stroke-width="1.4"/>`,
        );
      }
      const tx = plotX + (r.status === 'failed' ? BAR_H + 6 : 0);
      labels.push(
        text(tx, cy + 4, truncate(msg, 11, plotX + plotW + VALUE_W - tx), {
          size: 11,
          fill: color,
          style: 'italic',
          boxed: true,
        }),
      );
      return;
    }
    const x1 = sx(v);
    const w = Math.max(x1 - plotX, 1);
    out.push(
      `<rect x="${r1(plotX)}" y="${r1(cy - BAR_H / 2)}" width="${r1(w)}" height="${BAR_H}" fill="${barColor(r.impl)}" rx="1.5"/>`,
    );
    if (v > axis.max) {
      // cut bar: a white break near its end
      const bx = plotX + w - 14;
      out.push(
        `<path d="M${r1(bx)} ${r1(cy + BAR_H / 2 + 1)}l5 ${-(BAR_H + 2)}m4 0l-5 ${BAR_H + 2}" stroke="${COLOR.panel}" stroke-width="2"/>`,
      );
    }
    const natural = displayValue(m, r);
    const label = m.axis === 'ratio' ? `${formatAxis(m, v)} · ${formatDisplay(m, natural)}` : formatAxis(m, v);
    labels.push(
      text(x1 + 5, cy + 4, truncate(label, 10.5, plotX + plotW + VALUE_W - x1 - 5), {
        size: 10.5,
        fill: isSubject ? COLOR.text : COLOR.muted,
        weight: isSubject ? 'bold' : 'normal',
        boxed: true,
      }),
    );
  });

  // Target lines over the bars.
  lines.forEach((l, i) => {
    const lx = sx(l.value);
    const row = labelRows[i]!;
    const p = placed[i]!;
    const labelY = y + 50 + row * BAND_H + 9;
    out.push(
      `<line x1="${r1(lx)}" y1="${r1(labelY + 3)}" x2="${r1(lx)}" y2="${r1(barsBottom + 3)}" stroke="${COLOR.target}" stroke-width="1.5" stroke-dasharray="5 3"/>`,
    );
    out.push(text(p.x0, labelY, l.label, { size: 10, fill: COLOR.target, weight: 'bold' }));
  });
  out.push(...labels);

  return { svg: out.join('\n'), height: barsBottom + 24 - y };
}

/** The cell listing every target with muxwire's value and the bound it had to meet in this run. */
function summaryCell(
  results: TargetResult[],
  measures: Measure[],
  x: number,
  y: number,
): { svg: string; height: number } {
  const out: string[] = [];
  const met = results.filter((r) => r.met === true).length;
  out.push(text(x + PAD, y + 22, 'muxwire against docs/targets.md', { size: 14, weight: 'bold' }));
  out.push(
    text(x + PAD, y + 40, `${met} of ${results.length} targets met in this run`, { size: 11, fill: COLOR.muted }),
  );
  const colWork = x + PAD + 14;
  const colTarget = x + PAD + 84;
  const colBound = x + PANEL_W - PAD;
  const colValue = colBound - 78;
  const targetW = colValue - 62 - colTarget;
  let ly = y + 62;
  out.push(text(colTarget, ly, 'target', { size: 10, fill: COLOR.muted }));
  out.push(text(colValue, ly, 'muxwire', { size: 10, fill: COLOR.muted, anchor: 'end' }));
  out.push(text(colBound, ly, 'bound', { size: 10, fill: COLOR.muted, anchor: 'end' }));
  out.push(
    `<line x1="${r1(x + PAD)}" y1="${r1(ly + 5)}" x2="${r1(colBound)}" y2="${r1(ly + 5)}" stroke="${COLOR.grid}"/>`,
  );
  ly += 20;
  for (const r of results) {
    const m = measures.find((mm) => mm.id === r.measure)!;
    const mark = r.met === true ? '✓' : r.met === false ? '✗' : '?';
    const color = r.met === true ? COLOR.met : r.met === false ? COLOR.failed : COLOR.muted;
    out.push(text(x + PAD, ly, mark, { size: 11, fill: color, weight: 'bold' }));
    out.push(text(colWork, ly, m.workload, { size: 11, weight: 'bold' }));
    out.push(text(colTarget, ly, truncate(r.short, 11, targetW), { size: 11 }));
    const value =
      r.value !== undefined && r.threshold !== undefined
        ? formatAxis(m, r.value)
        : r.met === undefined
          ? '-'
          : r.met
            ? 'ok'
            : 'failed';
    out.push(text(colValue, ly, value, { size: 11, fill: color, weight: 'bold', anchor: 'end' }));
    if (r.threshold !== undefined)
      out.push(
        text(colBound, ly, `${r.op === '<=' ? '≤' : '≥'} ${formatAxis(m, r.threshold)}`, {
          size: 11,
          fill: COLOR.muted,
          anchor: 'end',
        }),
      );
    ly += 16;
  }
  return { svg: out.join('\n'), height: ly - y };
}

function legend(x: number, y: number): string {
  const out: string[] = [];
  let cx = x;
  const swatch = (color: string, label: string): void => {
    out.push(`<rect x="${r1(cx)}" y="${r1(y - 9)}" width="12" height="10" rx="1.5" fill="${color}"/>`);
    out.push(text(cx + 17, y, label, { size: 11, fill: COLOR.muted }));
    cx += 17 + textWidth(label, 11) + 16;
  };
  swatch(COLOR.subject, 'muxwire');
  swatch(COLOR.baseline, 'raw TCP');
  swatch(COLOR.other, 'other multiplexers');
  out.push(
    `<line x1="${r1(cx)}" y1="${r1(y - 4)}" x2="${r1(cx + 18)}" y2="${r1(y - 4)}" stroke="${COLOR.target}" stroke-width="1.5" stroke-dasharray="5 3"/>`,
  );
  out.push(text(cx + 23, y, 'target (docs/targets.md)', { size: 11, fill: COLOR.muted }));
  cx += 23 + textWidth('target (docs/targets.md)', 11) + 16;
  out.push(
    `<rect x="${r1(cx)}" y="${r1(y - 10)}" width="11" height="11" fill="none" stroke="${COLOR.failed}" stroke-width="1.2"/>`,
  );
  out.push(`<path d="M${r1(cx + 2.5)} ${r1(y - 7.5)}l6 6m0 -6l-6 6" stroke="${COLOR.failed}" stroke-width="1.3"/>`);
  out.push(text(cx + 16, y, 'failed run', { size: 11, fill: COLOR.muted }));
  return out.join('\n');
}

/** The whole chart for a report (every workload it holds). */
export function renderChart(report: Report): string {
  const measures = measuresOf(report);
  const results: TargetResult[] = [];
  for (const m of measures) {
    const ctx = contextOf(report, m);
    for (const t of targetsFor(m, SUBJECT)) results.push(evaluate(ctx, t));
  }
  const meta = report.meta;
  const header: string[] = [];
  const title = `muxwire benchmarks${meta.mode === 'quick' ? ' (quick run: smaller sizes)' : ''}`;
  header.push(text(MARGIN, 32, title, { size: 18, weight: 'bold' }));
  const date = String(meta.date ?? '')
    .slice(0, 16)
    .replace('T', ' ');
  const machine = meta.cpuModel ? `${meta.cores} cores ${meta.cpuModel}` : String(meta.cpus ?? '');
  const info = [date && `${date} UTC`, `Node ${meta.node}`, machine, meta.os ?? meta.platform]
    .filter(Boolean)
    .join(' · ');
  header.push(text(MARGIN, 52, truncate(info, 11, WIDTH - 2 * MARGIN), { size: 11, fill: COLOR.muted }));
  header.push(
    text(
      MARGIN,
      68,
      'Client and server in two processes over loopback TCP. Bars are ratios to raw TCP in the same run unless a panel says otherwise.',
      { size: 11, fill: COLOR.muted },
    ),
  );
  header.push(legend(MARGIN, 92));

  let y = 108;
  const body: string[] = [];
  const items: ({ kind: 'measure'; m: Measure } | { kind: 'summary' })[] = [
    ...measures.map((m) => ({ kind: 'measure' as const, m })),
    { kind: 'summary' },
  ];
  for (let i = 0; i < items.length; i += COLUMNS) {
    const row = items.slice(i, i + COLUMNS);
    const drawn = row.map((item, c) => {
      const x = MARGIN + c * (PANEL_W + GAP);
      return item.kind === 'measure'
        ? panel(
            item.m,
            report.runs.filter((r) => r.workload === item.m.workload),
            results,
            x,
            y,
          )
        : summaryCell(results, measures, x, y);
    });
    // Every cell of a row gets the row's height.
    const h = Math.max(...drawn.map((c) => c.height));
    drawn.forEach((c, i) => {
      const x = MARGIN + i * (PANEL_W + GAP);
      body.push(
        `<rect x="${r1(x)}" y="${r1(y)}" width="${r1(PANEL_W)}" height="${r1(h)}" rx="6" fill="${COLOR.panel}" stroke="${COLOR.border}"/>`,
        c.svg,
      );
    });
    y += h + GAP;
  }
  const height = y - GAP + MARGIN;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${r1(height)}" viewBox="0 0 ${WIDTH} ${r1(height)}" font-family="${FONT}">`,
    `<rect width="100%" height="100%" fill="${COLOR.background}"/>`,
    ...header,
    ...body,
    '</svg>',
    '',
  ].join('\n');
}
