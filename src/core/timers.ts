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

type Task = () => void;
type Immediate = (task: Task) => unknown;
type PostTask = (task: Task, options?: { delay?: number }) => unknown;

/**
 * The functions that schedule muxwire's own work, taken once, when this module loads. The work that moves data
 * (the next turn of reading, Window Updates held to a turn's end, a channel's `'drain'`, a WebSocket's drain poll)
 * goes through these, so that fake timers a test installs later (vitest's, Jest's, sinon's, node:test's
 * `mock.timers`) cannot stall it: data flows under them as it does through a plain socket. Deadlines (keep-alive,
 * open and close timeouts, the close's quiet time, lingers) use the global `setTimeout` of the moment, and so
 * follow a fake clock that the test advances; their verdicts come after the real turn's reads (`afterPendingReads`).
 */
const atLoad = globalThis as { setImmediate?: Immediate; scheduler?: { postTask?: PostTask } };
const immediateAtLoad: Immediate | undefined =
  typeof atLoad.setImmediate === 'function' ? atLoad.setImmediate.bind(globalThis) : undefined;
const timeoutAtLoad: (task: Task, ms: number) => unknown = setTimeout.bind(globalThis);
const postTaskAtLoad: PostTask | undefined =
  typeof atLoad.scheduler?.postTask === 'function' ? atLoad.scheduler.postTask.bind(atLoad.scheduler) : undefined;

/**
 * Runs `task` at the end of this event-loop turn, after its I/O (Node's `setImmediate`, as it was when muxwire
 * loaded); false where there is none (browsers), and then nothing is scheduled.
 */
export function afterIo(task: Task): boolean {
  if (immediateAtLoad === undefined) return false;
  immediateAtLoad(task);
  return true;
}

/** Runs `task` after `ms` (`setTimeout` as it was when muxwire loaded): work that moves data, not a deadline. */
export function afterTime(task: Task, ms: number): void {
  timeoutAtLoad(task, ms);
}

/**
 * Runs `task` in a later task after `ms`: `scheduler.postTask` where there is one (browsers stretch a chain of
 * `setTimeout`s to 4 ms each once it is five deep; `postTask`'s delays are not stretched), else `setTimeout`.
 */
export function laterTask(task: Task, ms: number): void {
  if (postTaskAtLoad !== undefined) void postTaskAtLoad(task, { delay: ms });
  else timeoutAtLoad(task, ms);
}

/**
 * Runs `task` once the bytes already waiting on the transport have been read. A deadline's timer can fire
 * late, after the event loop was busy, with the peer's answer sitting unread: Node runs expired timers before
 * it reads the sockets of that turn. Node reads them in the turn's poll phase, before `setImmediate`'s tasks;
 * elsewhere a new task comes after the messages already queued. A deadline is judged from there: under a test's
 * fake timers too, a real turn after the clock passed it, once the pings queued meanwhile have left and what
 * waited on the connection has been read (a fake immediate would judge inside the test's advance of the clock,
 * where no ping can leave: a live peer taken for dead).
 */
export function afterPendingReads(task: Task): void {
  if (!afterIo(task)) timeoutAtLoad(task, 0);
}

/**
 * Runs `task` in a later task, once the loop's pending work had its turn: `setImmediate` in Node (after the
 * sockets' reads of this turn), `scheduler.postTask` where there is one, else `setTimeout`.
 */
export function nextTask(task: Task): void {
  if (!afterIo(task)) laterTask(task, 0);
}
