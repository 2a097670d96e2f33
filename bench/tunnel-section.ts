// The tunnel command's section of docs/benchmarks.md, between its own markers: written by bench/tunnel.ts,
// and kept as it is when the main bench regenerates the rest of the document (bench/document.ts).

export const TUNNEL_START =
  '<!-- tunnel-bench:start (written by bench/tunnel.ts: npm run bench:tunnel -- --report) -->';
export const TUNNEL_END = '<!-- tunnel-bench:end -->';

/** The section with its markers, if `document` has one. */
export function keptTunnelSection(document: string): string | undefined {
  const from = document.indexOf(TUNNEL_START);
  const to = document.indexOf(TUNNEL_END);
  if (from < 0 || to < from) return undefined;
  return document.slice(from, to + TUNNEL_END.length);
}

/** `document` with `section` in place of its tunnel section, or added at its end. */
export function withTunnelSection(document: string, section: string): string {
  const old = keptTunnelSection(document);
  return old === undefined ? `${document.trimEnd()}\n\n${section}\n` : document.replace(old, () => section);
}
