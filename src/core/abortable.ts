/**
 * An `AbortSignal` put on a promise: the calls that wait (`accept()`, `ping()`, `close()`) give up when their
 * signal aborts, and a long-lived signal keeps no listener of a call that has settled. Also the check of a
 * call's options and signal, made before the call changes anything.
 * @module
 */

import { callBack, defer } from './defer.js';

/** The calls waiting on one signal, and the one listener that tells them all. */
interface Watchers {
  readonly calls: Set<() => void>;
  readonly listener: () => void;
}

const watched = new WeakMap<AbortSignal, Watchers>();

/**
 * Runs `onAbort` when `signal` aborts, until the returned function is called. However many calls wait on one
 * signal (an application's shutdown signal given to a thousand dials), the signal holds one listener of
 * muxwire's: Node warns of a leak past ten on one `AbortSignal` (`MaxListenersExceededWarning`). The calls run
 * in the order they began; one that stops watching while another runs is not called, as with the signal's own
 * listeners, and one that throws does not keep the others from running. `onAbort` is a function of the call's
 * own (the set holds each once). A signal already aborted runs it from a microtask, unless stopped first.
 */
export function whenAborted(signal: AbortSignal, onAbort: () => void): () => void {
  if (signal.aborted) {
    // Aborted after the call checked it and before it watched (an application's listener that ran between,
    // such as a 'channelOpen' listener tripping a shutdown signal): the abort is heard from a microtask.
    let watching = true;
    defer(() => watching && callBack(onAbort, undefined));
    return () => void (watching = false);
  }
  let watchers = watched.get(signal);
  if (watchers === undefined) {
    const calls = new Set<() => void>();
    const listener = (): void => {
      watched.delete(signal);
      for (const call of calls) callBack(call, undefined);
      calls.clear();
    };
    watchers = { calls, listener };
    watched.set(signal, watchers);
    signal.addEventListener('abort', listener, { once: true });
  }
  const { calls, listener } = watchers;
  calls.add(onAbort);
  return () => {
    if (!calls.delete(onAbort) || calls.size > 0 || watched.get(signal) !== watchers) return;
    watched.delete(signal);
    signal.removeEventListener('abort', listener);
  };
}

/**
 * `promise`'s outcome, or a rejection with `signal`'s reason if it aborts first (at once if it already has).
 * `onAbort` runs first: it returns false when the outcome was already decided (`promise` is settling, its
 * listener not yet run), and then that outcome stands. The listener on `signal` goes as `promise` settles,
 * before the caller hears. `promise` is listened to in every case, so a rejection of it after an abort is
 * never left unheard.
 */
export function abortable<T>(
  promise: Promise<T>,
  signal: AbortSignal | undefined,
  onAbort?: () => boolean,
): Promise<T> {
  if (signal === undefined) return promise;
  return new Promise<T>((resolve, reject) => {
    const abort = (): void => {
      if (onAbort?.() !== false) reject(signal.reason);
    };
    let unwatch: (() => void) | undefined;
    const settle =
      <A>(then: (argument: A) => void) =>
      (argument: A): void => {
        unwatch?.();
        then(argument);
      };
    promise.then(settle(resolve), settle(reject));
    if (signal.aborted) abort();
    else unwatch = whenAborted(signal, abort);
  });
}

/**
 * Throws `TypeError` unless `signal` is undefined or an `AbortSignal` (of any realm), before a call changes
 * anything: the `AbortController` itself given in its place is the usual slip, and the message names it.
 */
export function checkSignal(signal: unknown): void {
  const given = signal as Partial<AbortSignal & AbortController> | null | undefined;
  if (signal !== undefined && (typeof given?.addEventListener !== 'function' || typeof given.aborted !== 'boolean')) {
    throw new TypeError(
      `muxwire: signal must be an AbortSignal${typeof given?.abort === 'function' ? ' (pass controller.signal, not the controller)' : ''}`,
    );
  }
}

/**
 * A call's options, checked: undefined is none, anything but an object (or a bad `signal`) a `TypeError`. With
 * `names`, the options `call` takes, a name not among them is a `TypeError` too (as a session's options are): a
 * `dial({ timeout })` meant as a deadline would otherwise set none without a word.
 */
export function callOptions<T extends object>(options: T | undefined, names?: readonly string[], call?: string): T {
  if (options === undefined) return {} as T;
  if (typeof options !== 'object' || options === null) throw new TypeError('muxwire: options must be an object');
  if (names !== undefined) {
    for (const key in options) {
      if (Object.hasOwn(options, key) && !names.includes(key)) {
        throw new TypeError(`muxwire: ${call}() takes no option ${key} (its options: ${names.join(', ')})`);
      }
    }
  }
  checkSignal((options as { signal?: unknown }).signal);
  return options;
}

/** `call` with its options checked (`callOptions`): bad ones reject the promise it returns. */
export function withCallOptions<T extends object, R>(
  options: T | undefined,
  names: readonly string[],
  name: string,
  call: (options: T) => Promise<R>,
): Promise<R> {
  let checked: T;
  try {
    checked = callOptions(options, names, name);
  } catch (error) {
    return Promise.reject(error);
  }
  return call(checked);
}
