// docs/benchmarks.md (or any --markdown FILE): the run's circumstances, the headline table, the chart, one
// table per workload with its targets, and the "Profiling notes" section, which is written by people and
// kept from the previous file whenever the document is regenerated.
import { existsSync, readFileSync, renameSync, writeFileSync, copyFileSync } from 'node:fs';
import { dirname, relative, sep } from 'node:path';
import { mdEscape, rows, type Report } from './report.js';
import { REFERENCES } from './impl/index.js';
import { keptTunnelSection, withTunnelSection } from './tunnel-section.js';
import {
  BASELINE,
  LIGHT_SUBJECT,
  SUBJECT,
  bestOther,
  contextOf,
  displayValue,
  evaluate,
  formatAxis,
  formatDisplay,
  measuresOf,
  runOf,
  targetsFor,
  type TargetResult,
} from './targets.js';

export const NOTES_START = '<!-- notes -->';
export const NOTES_END = '<!-- /notes -->';

const DEFAULT_NOTES = `_Nothing recorded yet._ Record here what profiling found (\`node --cpu-prof\`, flame graphs), what
was changed, and the figures before and after. This section, between the \`notes\` comment markers, is
kept when \`npm run bench -- --report\` regenerates the rest of the file.`;

/** The text between the notes markers of an existing document (undefined: no document, or no markers). */
export function keptNotes(existing: string): string | undefined {
  const starts = existing.split(NOTES_START).length - 1;
  const ends = existing.split(NOTES_END).length - 1;
  if (starts === 0 && ends === 0) return undefined;
  if (starts !== 1 || ends !== 1 || existing.indexOf(NOTES_START) > existing.indexOf(NOTES_END)) {
    throw new Error(
      `expected one "${NOTES_START}" followed by one "${NOTES_END}" (found ${starts} and ${ends}); fix the file by hand so that the notes are not lost`,
    );
  }
  return existing
    .slice(existing.indexOf(NOTES_START) + NOTES_START.length, existing.indexOf(NOTES_END))
    .replace(/^\n+|\n+$/g, '');
}

const resultMark = (r: TargetResult): string => (r.met === true ? '✓ met' : r.met === false ? '✗ missed' : '? unknown');

function ratioText(a: number | undefined, b: number | undefined): string {
  return a === undefined || b === undefined || b === 0 ? '-' : `${(a / b).toFixed(2)}x`;
}

function verdictOf(results: TargetResult[]): string {
  const missed = results.filter((r) => r.met === false).length;
  const unknown = results.filter((r) => r.met === undefined).length;
  return missed > 0
    ? `✗ missed${results.length > 1 ? ` ${missed} of ${results.length}` : ''}`
    : unknown > 0
      ? '? unknown'
      : '✓ met';
}

/**
 * One row per measure: muxwire, raw TCP, the best other multiplexer, and muxwire's targets; with columns for
 * muxwire's light channels when they ran.
 */
export function headlineTable(report: Report): string[] {
  const light = report.runs.some((r) => r.impl === LIGHT_SUBJECT);
  const out = light
    ? [
        '| workload | figure | better | muxwire | raw TCP | muxwire / raw TCP | light channels | light / raw TCP | best other multiplexer | muxwire / best other | targets |',
        '|---|---|---|---:|---:|---:|---:|---:|---|---:|---|',
      ]
    : [
        '| workload | figure | better | muxwire | raw TCP | muxwire / raw TCP | best other multiplexer | muxwire / best other | targets |',
        '|---|---|---|---:|---:|---:|---|---:|---|',
      ];
  for (const m of measuresOf(report)) {
    const ctx = contextOf(report, m);
    const cell = (subject: string): [string, number | undefined] => {
      const v = displayValue(m, runOf(ctx.runs, subject));
      return [v === undefined ? (runOf(ctx.runs, subject)?.status ?? 'not run') : formatDisplay(m, v), v];
    };
    const [muxCell, mux] = cell(SUBJECT);
    const raw = displayValue(m, runOf(ctx.runs, BASELINE));
    const best = bestOther(m, ctx.runs);
    let verdict = verdictOf(targetsFor(m, SUBJECT).map((t) => evaluate(ctx, t)));
    const cells = [
      m.workload,
      mdEscape(m.title.replace(/^[^ ]+:? /, '')),
      m.better,
      muxCell,
      formatDisplay(m, raw),
      ratioText(mux, raw),
    ];
    if (light) {
      const [lightCell, lightValue] = cell(LIGHT_SUBJECT);
      cells.push(lightCell, ratioText(lightValue, raw));
      if (runOf(ctx.runs, LIGHT_SUBJECT)) {
        verdict = `${verdict} · light channels ${verdictOf(targetsFor(m, LIGHT_SUBJECT).map((t) => evaluate({ ...ctx, subject: LIGHT_SUBJECT }, t)))}`;
      }
    }
    cells.push(best ? `${formatDisplay(m, best.value)} (${best.run.impl})` : '-', ratioText(mux, best?.value), verdict);
    out.push(`| ${cells.join(' | ')} |`);
  }
  return out;
}

export interface DocumentOptions {
  /** where the document goes (for the relative link to the chart) */
  path: string;
  /** the chart file, if one was written */
  svgPath?: string;
  jsonPath?: string;
  /** the notes section's text (from the previous document) */
  notes?: string;
}

export function formatDocument(report: Report, o: DocumentOptions): string {
  const m = report.meta;
  const link = (p: string): string => relative(dirname(o.path), p).split(sep).join('/');
  const out: string[] = ['# muxwire benchmarks', ''];
  out.push(
    `<!-- Written by the bench (bench/document.ts). Regenerate with \`npm run bench -- --report\`; edit only the Profiling notes between the notes markers. -->`,
    '',
  );
  if (m.mode === 'quick') {
    out.push(
      '> **Quick run** (`--quick`): smaller sizes and short warm-ups, for checking the tooling. These figures are',
      '> not the full suite; run `npm run bench -- --report` for the record.',
      '',
    );
  }
  const partial = m.partial;
  if (partial) out.push(`> **Partial run**: ${mdEscape(String(partial))}.`, '');
  out.push('| | |', '|---|---|');
  out.push(`| date | ${m.date} |`);
  out.push(`| Node | ${m.node} |`);
  const machine = m.cpuModel
    ? `${m.cpuModel}, ${m.cores} cores, ${m.memory} RAM, ${m.os}`
    : `${m.cpus}, ${m.memoryGiB} GiB, ${m.platform}`;
  out.push(`| machine | ${mdEscape(machine)} |`);
  out.push(`| command | \`${String(m.command ?? 'npm run bench').replace(/`/g, "'")}\` |`);
  out.push(`| mode | ${m.mode}${m.duration ? `; the run took ${m.duration}` : ''} |`);
  const repeated = report.runs.some((r) => (r.rounds?.length ?? 0) > 1);
  out.push(
    `| setup | client and server in two processes over loopback TCP; every ratio is to raw TCP in the same run${repeated ? "; workloads with several rounds (see their sizes) report each figure's median, the implementations taking turns" : ''} |`,
  );
  if (o.jsonPath) out.push(`| data | [${link(o.jsonPath)}](${link(o.jsonPath)}) |`);
  out.push('');

  out.push('## Headline', '');
  out.push('muxwire beside raw TCP and the best of the other multiplexers (`node:http2`, `@chainsafe/libp2p-yamux`,');
  out.push('`yamux-js`, `multiplex`, `@libp2p/mplex`) on each workload; targets from `docs/targets.md`.');
  if (report.runs.some((r) => r.impl === LIGHT_SUBJECT)) {
    out.push('"light channels" is muxwire again, the same sessions with `LightChannel`s instead of Node `Duplex`');
    out.push('channels (`lightClient` / `lightServer`), judged against the same targets.');
  }
  out.push('');
  out.push(...headlineTable(report), '');
  if (report.runs.some((r) => REFERENCES.has(r.impl))) {
    out.push('The per-workload tables also show `floor` where it ran: a yardstick written for the bench, the least a');
    out.push('multiplexer over one connection with Node `Duplex` channels has to do (framing only: no flow control,');
    out.push('fairness, handshake or keep-alive; see `bench/README.md`). It is not one of the other multiplexers.', '');
  }

  if (o.svgPath) {
    out.push('## Chart', '');
    out.push(
      `[![muxwire and the baselines on each workload, as bars, with the targets as dashed lines](${link(o.svgPath)})](${link(o.svgPath)})`,
      '',
    );
    out.push(
      'Bars are ratios to raw TCP in the same run, except fairness (latency in ms, and the factor by which bulk',
    );
    out.push(
      'traffic raises it) and idle (heap per channel), where raw TCP is no fair yardstick or the target is absolute.',
      '',
    );
  }

  out.push('## Results per workload', '');
  for (const w of report.workloads) {
    const { header, body, notes, title, sizes } = rows(report, w.id);
    out.push(`### ${mdEscape(title)}`, '', `Sizes: ${mdEscape(sizes)}.`, '');
    out.push(`| ${header.map(mdEscape).join(' | ')} |`);
    out.push(`|${header.map((_, i) => (i === 0 || i === header.length - 1 ? '---' : '---:')).join('|')}|`);
    for (const r of body) out.push(`| ${r.map(mdEscape).join(' | ')} |`);
    out.push('');
    if (notes.length) {
      for (const n of notes) out.push(`- note: ${mdEscape(n)}`);
      out.push('');
    }
    out.push(`Target (docs/targets.md): ${mdEscape(w.target)}`, '');
    const lightRan = report.runs.some((r) => r.workload === w.id && r.impl === LIGHT_SUBJECT);
    out.push(
      lightRan
        ? '| target | muxwire | bound in this run | muxwire meets it | light channels | light channels meet it |'
        : '| target | muxwire | bound in this run | muxwire meets it |',
      lightRan ? '|---|---:|---:|---|---:|---|' : '|---|---:|---:|---|',
    );
    for (const meas of measuresOf(report).filter((x) => x.workload === w.id)) {
      const ctx = contextOf(report, meas);
      for (const t of meas.targets) {
        if (t.only !== undefined && t.only !== SUBJECT && !(lightRan && t.only === LIGHT_SUBJECT)) continue;
        const judged = (subjectName: string): { value: string; r: TargetResult; verdict: string } => {
          const subject = runOf(ctx.runs, subjectName);
          const r = evaluate({ ...ctx, subject: subjectName }, t);
          const value =
            r.value !== undefined && r.threshold !== undefined
              ? formatAxis(meas, r.value)
              : displayValue(meas, subject) !== undefined && !t.check
                ? formatDisplay(meas, displayValue(meas, subject))
                : (subject?.status ?? 'not run');
          const why = r.met === true ? '' : / \((.*)\)$/.exec(r.detail)?.[1];
          return { value, r, verdict: `${resultMark(r)}${why ? ` (${mdEscape(why)})` : ''}` };
        };
        // A light channels' target has no muxwire cells: its bound is the light channels'.
        const mux = t.only === undefined || t.only === SUBJECT ? judged(SUBJECT) : undefined;
        const r = mux?.r ?? judged(LIGHT_SUBJECT).r;
        const derived =
          r.thresholdLabel && !/^[\d.]+( \S+)?$/.test(r.thresholdLabel) ? ` (${mdEscape(r.thresholdLabel)})` : '';
        const bound =
          r.threshold !== undefined ? `${r.op === '<=' ? '<=' : '>='} ${formatAxis(meas, r.threshold)}${derived}` : '-';
        const cells = [mdEscape(t.text), mux?.value ?? '-', bound, mux?.verdict ?? '-'];
        if (lightRan) {
          const light = judged(LIGHT_SUBJECT);
          cells.push(light.value, light.verdict);
        }
        out.push(`| ${cells.join(' | ')} |`);
      }
    }
    out.push('');
  }

  out.push('## Profiling notes', '', NOTES_START, '', o.notes ?? DEFAULT_NOTES, '', NOTES_END, '');
  return out.join('\n');
}

/**
 * Writes the document, keeping the notes of the file it replaces. A previous file with no markers is
 * copied to FILE.bak first; one with broken markers is left alone (an error is thrown).
 */
export function writeDocument(report: Report, o: DocumentOptions): { backup?: string } {
  let notes: string | undefined;
  let backup: string | undefined;
  let tunnel: string | undefined;
  if (existsSync(o.path)) {
    const old = readFileSync(o.path, 'utf8');
    notes = keptNotes(old);
    tunnel = keptTunnelSection(old); // bench/tunnel.ts's section: not this bench's to rewrite
    if (notes === undefined && old.trim() !== '') {
      backup = `${o.path}.bak`;
      copyFileSync(o.path, backup);
    }
  }
  const generated = formatDocument(report, { ...o, ...(notes !== undefined ? { notes } : {}) });
  const text = tunnel === undefined ? generated : withTunnelSection(generated, tunnel);
  const tmp = `${o.path}.tmp-${process.pid}`;
  writeFileSync(tmp, text);
  renameSync(tmp, o.path);
  return backup ? { backup } : {};
}
