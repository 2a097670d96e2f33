/**
 * Short and long versions of the reliability tests. `npm test` runs the short ones; `npm run soak` sets
 * MUXWIRE_SOAK=1, which scales counts and durations up. Each figure can also be set on its own through an
 * environment variable (named where it is read), so a soak can be shortened or lengthened to fit a budget.
 */
import { appendFileSync } from 'node:fs';

/** True in the soak run. */
export const SOAK = process.env.MUXWIRE_SOAK === '1';

/** A count or duration: `short` in `npm test`, `soak` in the soak run, or the environment variable `name`. */
export function scaled(name: string, short: number, soak: number): number {
  const raw = process.env[name];
  if (raw !== undefined && raw !== '') {
    const value = Number(raw);
    if (!Number.isFinite(value) || value < 0) throw new RangeError(`${name} must be a number >= 0, got ${raw}`);
    return value;
  }
  return SOAK ? soak : short;
}

/**
 * Records a figure of a run: printed as a test diagnostic by the caller, and appended as one JSON line to
 * the file named by MUXWIRE_REPORT when it is set (the soak script sets it; docs/reliability.md quotes it).
 */
export function report(test: string, figures: Record<string, unknown>): string {
  const line = { test, soak: SOAK, at: new Date().toISOString(), ...figures };
  const file = process.env.MUXWIRE_REPORT;
  if (file !== undefined && file !== '') appendFileSync(file, `${JSON.stringify(line)}\n`);
  return `${test}: ${Object.entries(figures)
    .map(([k, v]) => `${k}=${typeof v === 'number' ? round(v) : String(v)}`)
    .join(' ')}`;
}

function round(value: number): string {
  return Number.isInteger(value) ? String(value) : value.toFixed(2);
}
