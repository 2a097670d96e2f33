/**
 * A browser's `scheduler.postTask`, put on the global object when this module loads: import it before muxwire,
 * which takes the scheduling functions it finds when it loads (src/core/timers.ts). Each task runs after its
 * `delay` (Node's `setTimeout`); `postTaskDelays` records the delays asked for.
 */
export const postTaskDelays: number[] = [];

const global = globalThis as { scheduler?: unknown };
if (global.scheduler !== undefined) throw new Error('a scheduler is already there: this test needs its own');
global.scheduler = {
  postTask(task: () => void, options: { delay?: number } = {}): Promise<void> {
    postTaskDelays.push(options.delay ?? 0);
    return new Promise((resolve) =>
      setTimeout(() => {
        task();
        resolve();
      }, options.delay ?? 0),
    );
  },
};
