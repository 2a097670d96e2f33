/**
 * A closing session's Go Away handshake: after sending Go Away, the session may end the transport only once
 * the peer has seen it, or a SYN sent before that would meet a closed connection and its dialler could not
 * tell that it was never accepted. A ping sent after the Go Away is answered only after the Go Away was
 * read. A SYN may still follow the answer: a peer can answer pings out of band (hashicorp/yamux sends each
 * answer from its own goroutine) while a dial that checked for Go Away just before it arrived is writing its
 * SYN. So the handshake ends once the peer has also been quiet for a moment ({@link GO_AWAY_QUIET_MS}, or
 * twice the RTT if longer); a late SYN (refused by the session) starts that wait again. `keepAliveTimeout`
 * bounds the wait for the answer, and the session's close timeout bounds it all. Either wait's end is judged
 * once what was received has been read (`afterReads`): input the read time slice holds for later turns may hold
 * the answer or a late SYN, and a SYN the session never read would meet the end of the transport unrefused.
 *
 * It owns the probe ping's value and its two timers. It queues only that Ping frame, and tells the session
 * through `onSeen` that the peer has seen the Go Away; it never ends the transport or touches a channel.
 * @module
 */
import { Flag, FrameType } from './frame.js';
import type { KeepAlive } from './keepalive.js';
import type { WriteScheduler } from './scheduler.js';
import { unref } from './timers.js';

/** A closing session ends once the peer, having answered the Go Away's ping, sent no SYN for this long. */
const GO_AWAY_QUIET_MS = 50;

export class GoAwayHandshake {
  /** The peer has seen this side's Go Away (or the wait for that ran out): a closing session may end. */
  seen = false;
  /** The ping value sent after this side's Go Away (0: none in flight); its answer shows the Go Away was read. */
  #probe = 0;
  #answerTimer: ReturnType<typeof setTimeout> | undefined;
  /** After the peer answered the probe: the wait for it to go quiet. */
  #quietTimer: ReturnType<typeof setTimeout> | undefined;
  readonly #keepAlive: KeepAlive;
  readonly #scheduler: WriteScheduler;
  readonly #answerTimeoutMs: number;
  readonly #afterReads: (task: () => void) => void;
  readonly #onSeen: () => void;
  readonly #quietMs: number;

  constructor(
    keepAlive: KeepAlive,
    scheduler: WriteScheduler,
    answerTimeoutMs: number,
    /** Runs a task once what was received has been read (the session's, see `afterPendingReads`). */
    afterReads: (task: () => void) => void,
    onSeen: () => void,
    /** The least quiet wait (ms), {@link GO_AWAY_QUIET_MS} by default; 0: none (see `SessionParts.goAwayQuietMs`). */
    quietMs = GO_AWAY_QUIET_MS,
  ) {
    this.#quietMs = quietMs;
    this.#keepAlive = keepAlive;
    this.#scheduler = scheduler;
    this.#answerTimeoutMs = answerTimeoutMs;
    this.#afterReads = afterReads;
    this.#onSeen = onSeen;
  }

  /**
   * Starts the handshake, the Go Away being queued. Where it cannot run (`possible` false: the format has no
   * ping or no Go Away, or the transport is ending) the Go Away counts as seen at once.
   */
  start(possible: boolean): void {
    if (!possible) {
      this.seen = true;
      return;
    }
    this.#probe = this.#keepAlive.takeValue();
    this.#scheduler.queueSessionFrame(FrameType.ping, Flag.syn, 0, this.#probe);
    const timer = unref(
      setTimeout(
        () =>
          this.#afterReads(() => {
            if (this.#answerTimer !== timer) return; // stop() came meanwhile
            this.#answerTimer = undefined;
            this.settle();
          }),
        this.#answerTimeoutMs,
      ),
    );
    this.#answerTimer = timer;
  }

  /** A Ping frame arrived: true if it answers the probe (the quiet wait starts), false if it is keep-alive's. */
  onPing(flags: number, value: number): boolean {
    if ((flags & Flag.syn) !== 0 || (flags & Flag.ack) === 0 || value !== this.#probe || value === 0) return false;
    this.#probe = 0;
    this.#awaitQuiet();
    return true;
  }

  /** The session refused a late SYN: if the quiet wait runs, the peer is not quiet yet, so it starts again. */
  onLateSyn(): void {
    if (this.#quietTimer !== undefined) this.#awaitQuiet();
  }

  /** The peer has seen the Go Away, or waiting for that ran out, or nothing else is left to wait for. */
  settle(): void {
    if (this.seen) return;
    this.stop();
    this.#onSeen();
  }

  /** Clears the timers and forgets the probe (the handshake settled, or the session ended). */
  stop(): void {
    this.seen = true;
    this.#probe = 0;
    clearTimeout(this.#answerTimer);
    clearTimeout(this.#quietTimer);
    this.#answerTimer = undefined;
    this.#quietTimer = undefined;
  }

  #awaitQuiet(): void {
    if (this.seen) return;
    if (this.#quietMs === 0) {
      this.#afterReads(() => this.settle());
      return;
    }
    clearTimeout(this.#quietTimer);
    // The timer stays the current one until its verdict: a late SYN read meanwhile starts the wait again.
    const timer = unref(
      setTimeout(
        () =>
          this.#afterReads(() => {
            if (this.#quietTimer !== timer) return;
            this.#quietTimer = undefined;
            this.settle();
          }),
        Math.max(this.#quietMs, 2 * (this.#keepAlive.minRtt ?? 0)),
      ),
    );
    this.#quietTimer = timer;
  }
}
