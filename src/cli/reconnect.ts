/**
 * The client's session over time: connect, keep the session while it lives, and after a failure or a
 * server's Go Away connect again, waiting between failed attempts (and after sessions lost soon after they
 * came up) with exponential backoff and jitter.
 * New forwarded connections wait here for a session (up to a timeout) while there is none.
 * @module
 */
import { GoAwayError, type Session } from '../index.js';

/** The first wait after a failed attempt; doubling from here reaches a second after four failures. */
export const INITIAL_DELAY_MS = 100;

/**
 * The wait before attempt `failures + 1`: exponential (`initial * 2^failures`, capped at `max`), of which
 * the upper half is random ("equal jitter"), so that many clients cut off at once do not come back in step,
 * yet none retries sooner than half the nominal delay.
 */
export function backoffDelay(
  failures: number,
  initial: number,
  max: number,
  random: () => number = Math.random,
): number {
  const nominal = Math.min(max, initial * 2 ** Math.min(failures, 30));
  return Math.round(nominal / 2 + random() * (nominal / 2));
}

/**
 * How long a session must have lasted for the backoff to start again from the first wait. One that is lost
 * sooner (a middlebox that cuts every connection, a server that drops the client just after the handshake)
 * counts as a failure for the backoff: the next attempt waits, as after a failed one, instead of coming at
 * once, again and again.
 */
export const STABLE_SESSION_MS = 5000;

/**
 * The shortest time between two attempts when a forwarded connection is waiting for the session: such a
 * connection cuts the backoff short (its user is waiting now, and the server may be back), but a burst of
 * connections still makes at most four attempts a second.
 */
export const DEMAND_INTERVAL_MS = 250;

/** What the reconnector tells its owner. */
export interface ReconnectHooks {
  /** A session is up (after its handshake). */
  up(session: Session, reconnects: number): void;
  /**
   * The session ended or was told to go away; a new one is being made, after `delayMs` when the session
   * did not last {@link STABLE_SESSION_MS}. `renewed`: this side chose to move on (see `renew`), the peer did
   * not send Go Away.
   */
  down(session: Session, reason: string, delayMs: number, renewed: boolean): void;
  /**
   * An attempt failed; the next comes after `delayMs` (shortened to the demand interval when `waiting`: a
   * forwarded connection is waiting for the session).
   */
  retry(error: Error, delayMs: number, failures: number, waiting: boolean): void;
  /**
   * The loop stopped for good: the error cannot be fixed by retrying (`retriesRanOut` false), or the retries
   * ran out after `failures` failed attempts in a row.
   */
  giveUp(error: Error, failures: number, retriesRanOut: boolean): void;
}

interface Waiter {
  resolve(session: Session | undefined): void;
  timer: NodeJS.Timeout;
}

/** Keeps a client session up: `establish` makes one (connect and handshake), or rejects. */
export class Reconnector {
  readonly #establish: () => Promise<Session>;
  readonly #isFatal: (error: Error) => boolean;
  readonly #hooks: ReconnectHooks;
  readonly #maxDelay: number;
  readonly #retries: number;
  readonly #stableMs: number;
  readonly #waiters = new Set<Waiter>();
  readonly #stopped = new AbortController();
  #current: Session | undefined;
  /** Ends the wait on the current session (see `renew`). */
  #renewCurrent: ((reason: string) => void) | undefined;
  #reconnects = 0;
  /** Ends the backoff wait early, while there is one. */
  #wake: (() => void) | undefined;
  #wakeTimer: NodeJS.Timeout | undefined;
  #lastAttempt = 0;
  // Read by `??=` in start(), which the rule does not count as a use.
  // eslint-disable-next-line no-unused-private-class-members
  #loop: Promise<void> | undefined;

  constructor(options: {
    establish: () => Promise<Session>;
    isFatal: (error: Error) => boolean;
    hooks: ReconnectHooks;
    maxDelay: number;
    retries: number;
    /** How long a session must last for the backoff to start over (default {@link STABLE_SESSION_MS}). */
    stableMs?: number;
  }) {
    this.#establish = options.establish;
    this.#isFatal = options.isFatal;
    this.#hooks = options.hooks;
    this.#maxDelay = options.maxDelay;
    this.#retries = options.retries;
    this.#stableMs = options.stableMs ?? STABLE_SESSION_MS;
  }

  /** The session new connections go to, if one is up. */
  get current(): Session | undefined {
    return this.#current;
  }

  /** True once `stop()` was called (a wait that ends with no session then ends for that reason). */
  get stopped(): boolean {
    return this.#stopped.signal.aborted;
  }

  /** Sessions made after the first. */
  get reconnects(): number {
    return this.#reconnects;
  }

  /** Starts the loop (once). */
  start(): void {
    this.#loop ??= this.#run();
  }

  /**
   * Resolves to the current session, or to the next one up within `timeoutMs`, else to undefined: after the
   * timeout, or at once when the reconnector stops (see {@link stopped}).
   */
  waitForSession(timeoutMs: number): Promise<Session | undefined> {
    if (this.#current !== undefined) return Promise.resolve(this.#current);
    if (this.#stopped.signal.aborted) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const waiter: Waiter = {
        resolve,
        timer: setTimeout(() => {
          this.#waiters.delete(waiter);
          resolve(undefined);
        }, timeoutMs),
      };
      this.#waiters.add(waiter);
      this.#hurry();
    });
  }

  /** The wait before the next attempt that connections waiting now would leave of `delay`. */
  #demandWait(delay: number): number {
    if (this.#waiters.size === 0) return delay;
    return Math.min(delay, Math.max(0, Math.round(this.#lastAttempt + DEMAND_INTERVAL_MS - performance.now())));
  }

  /** A connection is waiting: ends the backoff wait, at most every {@link DEMAND_INTERVAL_MS}. */
  #hurry(): void {
    if (this.#wake === undefined || this.#wakeTimer !== undefined) return;
    const wait = Math.max(0, this.#lastAttempt + DEMAND_INTERVAL_MS - performance.now());
    this.#wakeTimer = setTimeout(() => {
      this.#wakeTimer = undefined;
      this.#wake?.();
    }, wait);
  }

  /**
   * Gives up `session`, if it is the current one, for a new one at once, as when the server sends Go Away: the
   * `down` hook hears `reason`, and new connections go to the next session. (The client asks again for a
   * refused -R this way: only a handshake announces forwards.)
   */
  renew(session: Session, reason: string): void {
    if (this.#current === session) this.#renewCurrent?.(reason);
  }

  /** Stops reconnecting; waiting connections get no session. Returns the session that was up, if any. */
  stop(): Session | undefined {
    this.#stopped.abort();
    clearTimeout(this.#wakeTimer);
    this.#wakeTimer = undefined;
    this.#wake?.();
    this.#settleWaiters(undefined);
    const session = this.#current;
    this.#current = undefined;
    return session;
  }

  #settleWaiters(session: Session | undefined): void {
    for (const waiter of this.#waiters) {
      clearTimeout(waiter.timer);
      waiter.resolve(session);
    }
    this.#waiters.clear();
  }

  /** Waits `delay` ms before the next attempt; a waiting connection cuts it short (see `#hurry`). */
  async #pause(delay: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(wake, delay);
      function wake(): void {
        clearTimeout(timer);
        resolve();
      }
      this.#wake = wake;
      if (this.#waiters.size > 0) this.#hurry();
    });
    this.#wake = undefined;
    clearTimeout(this.#wakeTimer);
    this.#wakeTimer = undefined;
  }

  async #run(): Promise<void> {
    const signal = this.#stopped.signal;
    /** Failed attempts in a row (what `--retries` bounds). */
    let failures = 0;
    /** The backoff's step: failed attempts and sessions lost before {@link STABLE_SESSION_MS}, in a row. */
    let steps = 0;
    let sessions = 0;
    while (!signal.aborted) {
      let session: Session;
      try {
        this.#lastAttempt = performance.now();
        session = await this.#establish();
      } catch (error) {
        if (signal.aborted) return;
        failures += 1;
        const fatal = this.#isFatal(error as Error);
        if (fatal || failures > this.#retries) {
          this.stop();
          this.#hooks.giveUp(error as Error, failures, !fatal);
          return;
        }
        const delay = backoffDelay(steps, INITIAL_DELAY_MS, this.#maxDelay);
        steps += 1;
        // Reported as it will be: connections waiting now cut it short (one arriving later may still).
        this.#hooks.retry(error as Error, this.#demandWait(delay), failures, this.#waiters.size > 0);
        await this.#pause(delay);
        continue;
      }
      if (signal.aborted) {
        session.destroy();
        return;
      }
      failures = 0;
      if (sessions > 0) this.#reconnects += 1;
      sessions += 1;
      const upAt = performance.now();
      this.#current = session;
      this.#hooks.up(session, this.#reconnects);
      this.#settleWaiters(session);
      let renewed = false;
      const reason = await new Promise<string>((resolve) => {
        this.#renewCurrent = (why) => {
          renewed = true;
          resolve(why);
        };
        void sessionGone(session).then(resolve);
      });
      this.#renewCurrent = undefined;
      if (this.#current === session) this.#current = undefined;
      if (signal.aborted) return;
      // A renewal is this side's own choice, made after a wait of its own; a session lost soon after it came up
      // backs off as a failed attempt does.
      let delay = 0;
      if (renewed || performance.now() - upAt >= this.#stableMs) {
        steps = 0;
      } else {
        delay = backoffDelay(steps, INITIAL_DELAY_MS, this.#maxDelay);
        steps += 1;
      }
      this.#hooks.down(session, reason, this.#demandWait(delay), renewed);
      if (delay > 0) await this.#pause(delay);
    }
  }
}

/**
 * Resolves when `session` closes or its peer sends Go Away (it is no use for new channels either way), to
 * why: a Go Away with code 0 is the server shutting down; another code is the server ending the session
 * over an error (a protocol error, an internal error).
 * @internal
 */
export function sessionGone(session: Session): Promise<string> {
  return new Promise((resolve) => {
    const onClose = (error?: Error): void => {
      session.off('goaway', onGoAway);
      resolve(error === undefined ? 'the session closed' : error.message);
    };
    const onGoAway = (code: number): void => {
      session.off('close', onClose);
      resolve(code === 0 ? 'the server sent Go Away (shutting down)' : new GoAwayError(code).message);
    };
    if (session.state !== 'open') {
      resolve('the session closed');
      return;
    }
    session.once('close', onClose);
    session.once('goaway', onGoAway);
  });
}
