/**
 * An `AbortSignal` put on a promise: the calls that wait (`accept()`, `ping()`, `close()`) give up when their
 * signal aborts, and a long-lived signal keeps no listener of a call that has settled.
 * @module
 */

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
    const settle =
      <A>(then: (argument: A) => void) =>
      (argument: A): void => {
        signal.removeEventListener('abort', abort);
        then(argument);
      };
    promise.then(settle(resolve), settle(reject));
    if (signal.aborted) abort();
    else signal.addEventListener('abort', abort, { once: true });
  });
}
