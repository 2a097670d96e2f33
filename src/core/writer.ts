/**
 * Writing to the transport: when a flush runs, how the scheduler's frames are packed into batches, and the
 * transport's backpressure. A flush runs from a microtask after the first frame is scheduled (so everything
 * queued in one synchronous run leaves in one write), or at once after many scheduling calls (early flush).
 *
 * It owns the batch, the flush state and the write side's flags (blocked, ended, closed). It decides
 * nothing about what is sent (that is the scheduler's queues, filled by the session's parts), and it never
 * ends or destroys the transport itself: a failed write and "everything is written, end now" go back to the
 * session through the two functions it is given.
 * @module
 */
import type { WriteDone } from './channel-state.js';
import type { WireCodec } from './codec.js';
import { callBack, defer } from './defer.js';
import { TransportClosedError, isError } from './errors.js';
import type { Telemetry } from './observe.js';
import { FrameBatch, Scratch, type WriteScheduler } from './scheduler.js';
import type { Transport } from './transport.js';

/** A batch stops growing at this many bytes; the transport decides whether more follow at once. */
export const BATCH_LIMIT = 1024 * 1024;
/**
 * Frames scheduled while a flush is pending (scheduling calls, about two per dialled channel that writes at
 * once) after which the session writes at once instead of waiting for the microtask.
 */
const EARLY_FLUSH_AFTER = 256;
/** The scratch buffer batches start in (their bytes leave it as one exact-size copy), shared by all sessions. */
const SCRATCH = new Scratch(2048);

export class FrameWriter {
  /** The transport asked to wait (`write()` returned false) until its drain event. */
  blocked = false;
  /** This side ended its half of the transport: nothing more can be written. */
  ended = false;
  /** The transport has closed. */
  closed = false;
  /** The transport is to be ended once everything queued is written (see `endAfterFlush`). */
  endPending = false;
  #scheduled = false;
  /** Frames scheduled since the pending flush was: see {@link EARLY_FLUSH_AFTER}. */
  #scheduledSinceFlush = 0;
  /** Inside `writeBatches` (an early flush must not start another one from a hook or a write callback). */
  #writing = false;
  /** The batch being assembled, reused for every transport write (with its scratch staging buffer). */
  readonly #batch: FrameBatch;
  readonly #flushTask = (): void => this.flush();

  readonly #transport: Transport;
  readonly #scheduler: WriteScheduler;
  readonly #onWriteError: (error: Error, now: boolean) => Error | undefined;
  readonly #onFlushedToEnd: () => void;
  readonly #onInternalError: (error: unknown) => void;
  readonly #telemetry: Telemetry;
  constructor(
    transport: Transport,
    scheduler: WriteScheduler,
    codec: WireCodec,
    allocate: (size: number) => Uint8Array,
    /**
     * The transport failed a write (or threw): the session fails, and returns its error, if it has one, which
     * the writes of that batch then fail with. With `now` false (a write with no application write in it), the
     * session leaves the transport time to report it first.
     */
    onWriteError: (error: Error, now: boolean) => Error | undefined,
    /** Asked by `endAfterFlush()`: everything queued is written, the transport may be ended. */
    onFlushedToEnd: () => void,
    /** Counts the bytes and frames handed to the transport. */
    telemetry: Telemetry,
    /** Writing threw (a bug of ours): the session fails, as it does for one on the read path. */
    onInternalError: (error: unknown) => void,
  ) {
    this.#transport = transport;
    this.#scheduler = scheduler;
    this.#onWriteError = onWriteError;
    this.#onFlushedToEnd = onFlushedToEnd;
    this.#onInternalError = onInternalError;
    this.#telemetry = telemetry;
    this.#batch = new FrameBatch(allocate, codec, SCRATCH);
  }

  /** Something was queued on the scheduler: make sure a flush follows. */
  schedule(): void {
    if (this.#scheduled) {
      // Much queued in one synchronous run (a loop dialling thousands of channels): send what is there now,
      // so the peer works on it while the loop goes on, rather than after it.
      if (++this.#scheduledSinceFlush >= EARLY_FLUSH_AFTER && !this.#writing) {
        this.#scheduledSinceFlush = 0;
        this.#writeGuarded(); // the pending flush still comes, for what is queued after this
      }
      return;
    }
    if (this.blocked || this.closed || this.ended) return;
    this.#scheduled = true;
    this.#scheduledSinceFlush = 0;
    defer(this.#flushTask);
  }

  /** Writes what is queued now. */
  flush(): void {
    this.#scheduled = false;
    this.#writeGuarded();
  }

  /**
   * Writes batches; an exception (a bug) fails the session instead of escaping from a microtask, where it would
   * end the process as an unhandled rejection and leave the session stuck.
   */
  #writeGuarded(): void {
    try {
      this.#writeBatches();
    } catch (error) {
      this.#onInternalError(error);
    }
  }

  /** The transport drained: go on writing (a flush only when something waits: a bulk writer drains often). */
  onDrain(): void {
    this.blocked = false;
    if (this.endPending || !this.#scheduler.idle) this.schedule();
  }

  /** Ends the transport (through the host) once everything queued is written: at once if nothing is. */
  endAfterFlush(): void {
    this.endPending = true;
    this.schedule();
    if (!this.#scheduled && this.#scheduler.idle && !this.blocked) this.#onFlushedToEnd();
  }

  /** Writes batches until nothing is queued or the transport asks to wait. */
  #writeBatches(): void {
    this.#writing = true;
    try {
      while (!this.blocked && !this.closed && !this.ended && !this.#scheduler.idle) {
        const batch = this.#batch;
        this.#scheduler.fill(batch, BATCH_LIMIT);
        if (batch.bytes === 0) {
          batch.reset(); // (gives back the scratch, should it have been lent for frames of no bytes)
          break;
        }
        const { bytes, frames, payloadBytes, done } = batch;
        const parts = batch.finish();
        // The parts are the transport's now: the batch lets go of them, so an idle session holds no payloads.
        batch.reset();
        if (!this.send(parts, done, bytes, frames, payloadBytes)) return;
      }
      if (this.endPending && !this.blocked && this.#scheduler.idle) this.#onFlushedToEnd();
    } finally {
      this.#writing = false;
    }
  }

  /**
   * Nothing stops a write from being handed to the transport now: it is neither blocked nor ended nor
   * closed, and no batch is being written (a write the transport completes at once must not start another
   * from its callback). What the direct route of large writes (direct-write.ts) asks before it writes.
   */
  get ready(): boolean {
    return !this.blocked && !this.closed && !this.ended && !this.#writing;
  }

  /** A batch is being written: what the transport reports now comes from inside its `write()`. */
  get writing(): boolean {
    return this.#writing;
  }

  /**
   * The outcome of a write that completes no application write (a SYN, Window Updates, pings): a failure is told
   * to the session as one the transport should report itself (see the constructor's `onWriteError`).
   */
  readonly #failOnError = (error?: Error | null): void => {
    if (error) this.#onWriteError(error, false);
  };

  /**
   * Hands `parts` (`frames` frames, `bytes` bytes of which `payloadBytes` are payload) to the transport in one
   * write, counts them, and notes backpressure; `done` (the callbacks of the writes it completes) get its
   * outcome, a failure as the session's typed error. Returns false when the transport threw: the session is
   * failing, and nothing more is written.
   */
  send(parts: Uint8Array[], done: readonly WriteDone[], bytes: number, frames: number, payloadBytes: number): boolean {
    const telemetry = this.#telemetry;
    telemetry.bytesOut += bytes;
    telemetry.framesOut += frames;
    telemetry.dataBytesOut += payloadBytes;
    const writing = this.#writing;
    this.#writing = true;
    try {
      const accepted = this.#transport.write(
        parts,
        done.length === 0
          ? this.#failOnError
          : (error) => {
              const outcome = error ? this.#failure(error) : null;
              for (const callback of done) callBack(callback, outcome);
            },
      );
      if (!accepted) this.blocked = true;
      return true;
    } catch (error) {
      // A transport that throws (against its contract) took nothing: the batch's writes fail with the session.
      const failure = this.#failure(isError(error) ? error : new Error(String(error)));
      for (const callback of done) callBack(callback, failure);
      return false;
    } finally {
      this.#writing = writing;
    }
  }

  /**
   * What the writes of a failed transport write fail with. The session fails first, so each channel records
   * why before its write fails; and channels see a typed error, never the socket's own (EPIPE, ECONNRESET),
   * which becomes the `cause`.
   */
  #failure(error: Error): Error {
    return this.#onWriteError(error, true) ?? TransportClosedError.failed(error);
  }
}
