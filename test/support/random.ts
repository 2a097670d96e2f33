/**
 * A small seeded pseudo-random generator (mulberry32) for tests: every random choice a reliability test makes
 * comes from one of these, so a failing trial is reproduced by its seed.
 */
export class Rng {
  private state: number;

  constructor(readonly seed: number) {
    this.state = seed >>> 0;
  }

  /** The next unsigned 32-bit value. */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** A float in [0, 1). */
  float(): number {
    return this.next() / 0x1_0000_0000;
  }

  /** An integer in [min, max], both included. */
  int(min: number, max: number): number {
    return min + Math.floor(this.float() * (max - min + 1));
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.float() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.float() * items.length)]!;
  }

  /** A size drawn so that small and large values both occur often (log-uniform between 0 and `max`). */
  size(max: number): number {
    if (this.chance(0.1)) return 0;
    return Math.min(max, Math.floor(Math.exp(this.float() * Math.log(max + 1))));
  }

  /** A derived generator, so that parts of a trial draw independently of each other. */
  fork(): Rng {
    return new Rng(this.next() ^ 0x9e37_79b9);
  }
}
