/**
 * Leak and memory checks: counts of the process's active resources (timers, sockets, servers...), a garbage
 * collector whether or not node ran with --expose-gc, and memory figures taken after collecting.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** How many active resources of each kind the process holds (`process.getActiveResourcesInfo()`). */
export function resourceCounts(): Map<string, number> {
  const counts = new Map<string, number>();
  for (const kind of process.getActiveResourcesInfo()) counts.set(kind, (counts.get(kind) ?? 0) + 1);
  return counts;
}

/** Kinds with more resources now than in `baseline`, and by how many. */
export function resourcesAbove(baseline: Map<string, number>): Record<string, number> {
  const extra: Record<string, number> = {};
  for (const [kind, count] of resourceCounts()) {
    const over = count - (baseline.get(kind) ?? 0);
    if (over > 0) extra[kind] = over;
  }
  return extra;
}

/**
 * Waits (polling, up to `timeoutMs`) until the process holds no more resources of any kind than in `baseline`;
 * resolves to what is still above it (empty when nothing leaked).
 */
export async function settleResources(
  baseline: Map<string, number>,
  timeoutMs = 3000,
): Promise<Record<string, number>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    // the poll itself uses a timer; measure between polls
    const extra = resourcesAbove(baseline);
    if (Object.keys(extra).length === 0 || Date.now() > deadline) return extra;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

let collector: (() => void) | undefined;

/** A full garbage collection: `global.gc` under --expose-gc, else one enabled at run time. */
export function collectGarbage(): void {
  if (collector === undefined) {
    const exposed = (globalThis as { gc?: () => void }).gc;
    if (typeof exposed === 'function') collector = exposed;
    else {
      setFlagsFromString('--expose-gc');
      collector = runInNewContext('gc') as () => void;
    }
  }
  collector();
}

export interface MemoryFigures {
  heapUsed: number;
  rss: number;
  external: number;
  arrayBuffers: number;
}

/** Memory after letting pending work finish and collecting garbage `turns` times (a turn between each), in bytes. */
export async function settledMemory(turns = 2): Promise<MemoryFigures> {
  for (let i = 0; i < turns; i++) {
    await new Promise((resolve) => setImmediate(resolve));
    collectGarbage();
  }
  const { heapUsed, rss, external, arrayBuffers } = process.memoryUsage();
  return { heapUsed, rss, external, arrayBuffers };
}

export const MiB = 1024 * 1024;

/** Megabytes with one decimal, for reports. */
export function mib(bytes: number): number {
  return Math.round((bytes / MiB) * 10) / 10;
}
