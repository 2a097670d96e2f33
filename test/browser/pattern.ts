/**
 * The deterministic byte pattern both sides of the browser tests generate (xorshift32), so that the page and
 * Node can check megabytes byte by byte without holding or sending a copy.
 * @module
 */

/** Fills `out` with the next bytes of the pattern whose state is `state` (advanced in place). */
export function fillPattern(state: { x: number }, out: Uint8Array): void {
  let x = state.x;
  for (let i = 0; i < out.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  state.x = x;
}
