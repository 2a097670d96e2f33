/**
 * Runs work from a microtask, the cheap way.
 * @module
 */

const RESOLVED = Promise.resolve();

/**
 * Runs `task` from a microtask. A settled promise's `then()` costs less than `queueMicrotask`, which Node wraps
 * in an `AsyncResource` and a bound function (measured: ~350 bytes per call, a tenth of a round trip's
 * garbage; and V8 compiles that machinery during a session's first thousands of channels).
 */
export function defer(task: () => void): void {
  void RESOLVED.then(task);
}

/**
 * Calls an application's callback (a write's completion, which Node's streams run synchronously together with
 * the caller's own callback and listeners). An exception it throws is rethrown from a microtask, where it
 * surfaces as uncaught as it would from a socket's, instead of breaking off the session's work half done (the
 * other channels' completions, a session's failure, a sweep of timeouts).
 */
export function callBack<T>(callback: (arg: T) => void, arg: T): void {
  try {
    callback(arg);
  } catch (error) {
    rethrowLater(error);
  }
}

/**
 * `queueMicrotask` as it was when muxwire loaded: Jest's fake timers replace the global one and hold its tasks
 * until the test runs the clock, so an application's exception (a failed assertion in a listener) would vanish.
 */
const queueMicrotaskAtLoad: (task: () => void) => void =
  typeof queueMicrotask === 'function' ? queueMicrotask.bind(globalThis) : (task) => void setTimeout(task, 0);

/** Throws `error` again from a microtask: an application's exception, surfacing as uncaught. */
export function rethrowLater(error: unknown): void {
  queueMicrotaskAtLoad(() => {
    throw error;
  });
}
