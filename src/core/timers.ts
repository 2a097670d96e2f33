/**
 * Timer helpers shared by the session's parts.
 * @module
 */

/**
 * Periodic timers (keep-alive, probes, open timeouts) and the linger after closing do not keep a process
 * alive on their own; timers of a wait the application started (a ping, a close) do, until they settle.
 */
export function unref(timer: ReturnType<typeof setTimeout>): ReturnType<typeof setTimeout> {
  (timer as { unref?: () => void }).unref?.();
  return timer;
}

export const noop = (): void => {};

type Immediate = (task: () => void) => unknown;

/**
 * Runs `task` once the bytes already waiting on the transport have been read. A deadline's timer can fire
 * late, after the event loop was busy, with the peer's answer sitting unread: Node runs expired timers before
 * it reads the sockets of that turn. Node reads them in the turn's poll phase, before `setImmediate`'s tasks;
 * elsewhere a new task comes after the messages already queued. A deadline is judged from there.
 */
export function afterPendingReads(task: () => void): void {
  // Looked up at each call, as `setTimeout` is: a test's virtual clock may stand in for both.
  const immediate = (globalThis as { setImmediate?: Immediate }).setImmediate;
  if (immediate !== undefined) immediate(task);
  else setTimeout(task, 0);
}

type PostTask = (task: () => void, options?: object) => unknown;

/**
 * Runs `task` in a later task, once the loop's pending work had its turn: `setImmediate` in Node (after the
 * sockets' reads of this turn), `scheduler.postTask` where there is one (a browser's `setTimeout` stretches a
 * chain of them to 4 ms each after five), else `setTimeout`.
 */
export function nextTask(task: () => void): void {
  const immediate = (globalThis as { setImmediate?: Immediate }).setImmediate;
  if (immediate !== undefined) {
    immediate(task);
    return;
  }
  const scheduler = (globalThis as { scheduler?: { postTask?: PostTask } }).scheduler;
  if (scheduler?.postTask !== undefined) void scheduler.postTask(task);
  else setTimeout(task, 0);
}
