/**
 * One channel's protocol state: its named lifecycle state, its send queue and send window, and its receive
 * window. The session drives the transitions; the write scheduler reads and drains the send side.
 * @module
 */
import { callBack } from './defer.js';
import { ReceiveWindow } from './flow.js';
import type { Fifo } from './fifo.js';
import { SPEC_INITIAL_WINDOW } from './options.js';

/**
 * The named states of a channel (the yamux stream states):
 * - `init`: dialled here, SYN not sent yet (waiting for the ACK backlog or the next flush).
 * - `syn-sent`: SYN sent, no ACK yet. Writing is allowed already.
 * - `syn-received`: opened by the peer, not accepted by the application yet.
 * - `established`: open both ways.
 * - `local-closed`: this side sent FIN (half-close); the peer may still send.
 * - `remote-closed`: the peer sent FIN; this side may still send.
 * - `closed`: both sides sent FIN.
 * - `reset`: aborted by RST in either direction, or by the session ending.
 */
export type ChannelStateName =
  'init' | 'syn-sent' | 'syn-received' | 'established' | 'local-closed' | 'remote-closed' | 'closed' | 'reset';

/** What the adapter behind a channel (a Node `Duplex`, a Web stream) must offer the session. */
export interface ChannelEndpoint {
  /** @internal Data arrived; keep it until the application reads it. */
  deliver(data: Uint8Array): void;
  /** @internal The peer half-closed: no more data will arrive. */
  remoteEnded(): void;
  /**
   * @internal The peer's close ended this side's writing too (a format without half-close), with nothing
   * queued: end the writing side as `end()` would (its FIN is the session's to send).
   */
  writingEnded?(): void;
  /**
   * @internal The channel ended abnormally (reset, or its session failed: `sessionEnded`); fail pending reads
   * and writes. When the session failed after the peer's FIN, what the peer sent may still be read first.
   * Returns true when the endpoint keeps the channel to be read and its writes still queued are to be taken
   * (completed without an error, going nowhere, as a socket's bytes taken before a reset) rather than failed;
   * anything else (nothing, false) fails them.
   */
  fail(error: Error, sessionEnded?: boolean): unknown;
  /** @internal Bytes delivered and not yet read by the application. */
  readonly bufferedBytes: number;
  /** True once the application has let go of the channel (a Node stream's `destroy()`, by hand or automatic). */
  readonly destroyed: boolean;
}

/** Completion of one queued write: called once, when its bytes reached the transport or failed. */
export type WriteDone = (error?: Error | null) => void;

/** One write waiting in a channel's send queue. */
export interface QueuedWrite {
  data: Uint8Array;
  /**
   * `data`'s length when it was queued: what is sent of it, and what `queuedBytes` counted. The array is the
   * application's (not a copy) until it is sent: a view of a resizable buffer may grow or shrink meanwhile,
   * and one whose buffer is transferred is detached (its length 0).
   */
  length: number;
  offset: number;
  done: WriteDone | null;
}

/**
 * Flags a channel still owes the peer on its next frame. A `const enum`, so that the compiler writes the
 * numbers where the parts use them (no lookups in a browser bundle).
 */
export const enum Pending {
  syn = 0x1,
  ack = 0x2,
  fin = 0x4,
  rst = 0x8,
}

/**
 * The bit of each boolean of {@link ChannelState} in its `flags`. Each name gets a getter and a setter on the
 * prototype (installed below the class), so the session's code reads and writes them as plain properties.
 */
const FLAG_BITS = {
  inControl: 1 << 0,
  inData: 1 << 1,
  awaitingAck: 1 << 2,
  finSent: 1 << 3,
  frameEachWrite: 1 << 4,
  remoteFin: 1 << 5,
  localFin: 1 << 6,
  readClosed: 1 << 7,
  withheld: 1 << 8,
  overfull: 1 << 9,
  live: 1 << 10,
  awaitingAccept: 1 << 12,
  heldClosed: 1 << 13,
  readCut: 1 << 14,
} as const;
const LIVE_BIT = FLAG_BITS.live;
/** `outbound`, fixed at construction (a getter of its own: it has no setter). */
const OUTBOUND_BIT = 1 << 11;
/** {@link ChannelState.lateDrops}: two bits, from bit 15. */
const LATE_DROPS_SHIFT = 15;
const LATE_DROPS_MASK = 3 << LATE_DROPS_SHIFT;

/** Stops watching a dial's abort signal, once the dial settles (see `whenAborted`). */
export type OpenAbort = () => void;

/** The state of a dial awaiting its acknowledgement (see `ChannelState.openDeadline` and `openAbort`). */
interface OpeningWatch {
  deadline: number;
  abort: OpenAbort | null;
}

/** What a framed write's place in a queue holds until the place goes: its bytes are let go at once. */
const FRAMED: QueuedWrite = { data: new Uint8Array(0), length: 0, offset: 0, done: null };

/** The queue of every channel with nothing queued; never written to (see {@link ChannelState.queue}). */
const NO_WRITES: QueuedWrite[] = Object.freeze([]) as unknown as QueuedWrite[];

export class ChannelState {
  state: ChannelStateName;
  /** The endpoint the application holds; set right after construction. */
  endpoint!: ChannelEndpoint;

  // --- send side ---
  /** Bytes this side may still send (the peer's receive window). */
  sendWindow = SPEC_INITIAL_WINDOW;
  /**
   * Writes not yet fully framed, oldest first. Starts as one shared empty array, and an empty queue takes its
   * next write as a new one-element array: a channel that writes now and then holds no array grown for 16
   * (an array literal's first `push` reserves that many), which in a session opening thousands of channels at
   * once is memory for the young-generation GC to copy.
   * @hidden (the session's bookkeeping)
   */
  queue: QueuedWrite[] = NO_WRITES;
  /**
   * Where the writes not yet fully framed start in `queue`: those before it were framed and are dropped from
   * the array only in bulk (a `shift()` per frame copies the rest of a long queue in V8).
   */
  queueHead = 0;
  /** Queued bytes not yet framed. */
  queuedBytes = 0;
  /** Payload bytes framed for sending so far (`channel.stats().bytesOut`). */
  sent = 0;
  /** `Pending` flags to send: SYN/ACK ride on the next frame, FIN after the queue, RST at once. */
  pending = 0;
  /** Window increment to announce on the next Window Update. */
  pendingIncrement = 0;
  /**
   * The channel's yes/no facts ({@link ChannelState.inControl} ... {@link ChannelState.live}), one bit each
   * (see `FLAG_BITS`), and `outbound`: twelve booleans as one number keep an idle channel 88 bytes lighter than
   * twelve fields.
   */
  flags = LIVE_BIT;
  /** Linked into the scheduler's control list / data ring. */
  declare inControl: boolean;
  declare inData: boolean;
  nextControl: ChannelState | null = null;
  nextData: ChannelState | null = null;
  /** A SYN sent and no ACK yet (counts against the ACK backlog). */
  declare awaitingAck: boolean;
  /** FIN has been packed into a batch. */
  declare finSent: boolean;
  /**
   * Each write goes out in Data frames of its own, never sharing one with the next write, so the peer can
   * deliver it as one message. libp2p's streams do so (its compliance suite checks that two `send()`s arrive
   * as two messages); muxwire's own channels pack consecutive writes together.
   */
  declare frameEachWrite: boolean;

  // --- receive side ---
  readonly rx: ReceiveWindow;
  /** Payload bytes handed to the endpoint. */
  delivered = 0;
  /**
   * The chunks left waiting here (each costs the session's memory `CHUNK_COST`: `SessionMemory.held`),
   * as the offsets in `delivered` where each ends, oldest first; null while none waits (most channels are read
   * as their data comes). A chunk's cost goes once the reader is past its end.
   * @hidden (the session's bookkeeping)
   */
  held: Fifo<number> | null = null;
  /** The peer's FIN arrived. */
  declare remoteFin: boolean;
  /** This side asked to end: FIN queued (sent once `finSent`). No more data may be queued. */
  declare localFin: boolean;
  /** The application stopped reading (`closeRead()`): data that arrives is discarded and credited at once. */
  declare readClosed: boolean;
  /**
   * This side's close ended its reading too (a RST, on a format without half-close): data that arrives is
   * discarded and credited at once, as after `closeRead()`, while what came before is still read.
   */
  declare readCut: boolean;
  /** Waiting for session memory to allow a Window Update. */
  declare withheld: boolean;
  /** Holds more than a window unread on a codec without windows (the session pauses reading meanwhile). */
  declare overfull: boolean;
  /** In the session's table of live channels. */
  declare live: boolean;
  /** Opened by the peer and waiting in the accept queue: the application has not taken it yet. */
  declare awaitingAccept: boolean;
  /** Closed both ways on the wire, and kept in the table until taken and read (a format without half-close). */
  declare heldClosed: boolean;
  /**
   * What a dialled channel holds only until the peer acknowledges it ({@link ChannelState.openDeadline},
   * {@link ChannelState.openAbort}); null otherwise. One field for both, and no boxed number for the deadline
   * in every channel: an open channel holds neither.
   */
  #opening: OpeningWatch | null = null;

  constructor(
    readonly id: number,
    outbound: boolean,
    initialWindow: number,
    maxWindow: number,
  ) {
    this.state = outbound ? 'init' : 'syn-received';
    if (outbound) this.flags |= OUTBOUND_BIT;
    this.rx = new ReceiveWindow(initialWindow, maxWindow);
  }

  /**
   * Small payloads dropped since the application let go of the channel closed both ways here (at most 3): a
   * peer's last words before it heard of the close (a TLS close_notify) are dropped, not answered with a reset.
   */
  get lateDrops(): number {
    return (this.flags & LATE_DROPS_MASK) >>> LATE_DROPS_SHIFT;
  }

  set lateDrops(count: number) {
    this.flags = (this.flags & ~LATE_DROPS_MASK) | (count << LATE_DROPS_SHIFT);
  }

  /** Dialled by this side (true) or by the peer (false). */
  get outbound(): boolean {
    return (this.flags & OUTBOUND_BIT) !== 0;
  }

  /** Dialled and not yet acknowledged: when the open timeout fails it (ms, `performance.now()`), else 0. */
  get openDeadline(): number {
    return this.#opening === null ? 0 : this.#opening.deadline;
  }

  set openDeadline(deadline: number) {
    if (this.#opening !== null) {
      this.#opening.deadline = deadline;
      if (deadline === 0 && this.#opening.abort === null) this.#opening = null;
    } else if (deadline !== 0) {
      this.#opening = { deadline, abort: null };
    }
  }

  /**
   * Dialled with a signal and not yet acknowledged: what stops watching the signal once settled.
   * @hidden (the session's bookkeeping)
   */
  get openAbort(): OpenAbort | null {
    return this.#opening === null ? null : this.#opening.abort;
  }

  /** @hidden (the session's bookkeeping) */
  set openAbort(abort: OpenAbort | null) {
    if (this.#opening !== null) {
      this.#opening.abort = abort;
      if (abort === null && this.#opening.deadline === 0) this.#opening = null;
    } else if (abort !== null) {
      this.#opening = { deadline: 0, abort };
    }
  }

  /** True when the channel may carry data frames now: SYN allowed, bytes queued, window open. */
  get hasSendableData(): boolean {
    return (
      this.queuedBytes > 0 &&
      this.sendWindow > 0 &&
      (this.pending & Pending.rst) === 0 &&
      (this.state !== 'init' || (this.pending & Pending.syn) !== 0)
    );
  }

  /** Queues bytes to send; `done` is called when they reached the transport. */
  enqueue(data: Uint8Array, done: WriteDone | null): void {
    const item: QueuedWrite = { data, length: data.length, offset: 0, done };
    if (this.queue.length === 0) this.queue = [item];
    else this.queue.push(item);
    this.queuedBytes += data.length;
  }

  /**
   * Ends the channel abnormally on this side's books: `reset`, its endpoint failed with `error` (first, so the
   * endpoint records the reason before its queued writes fail), its queue dropped. Whether a RST goes to the
   * peer, and taking it out of the session's table, are the session's business. `sessionEnded`: the session
   * failed under the channel (told to the endpoint). Returns true when the endpoint keeps it to be read, its
   * queued writes taken (see `ChannelEndpoint.fail`).
   */
  fail(error: Error, failEndpoint = true, sessionEnded = false): boolean {
    this.state = 'reset';
    const kept = failEndpoint && this.endpoint.fail(error, sessionEnded) === true;
    this.dropQueue(kept ? null : error);
    return kept;
  }

  /** Drops every queued write, failing its completion (null: completing it, its bytes going nowhere). */
  dropQueue(error: Error | null): void {
    const queue = this.queue;
    const head = this.queueHead;
    this.queueEmptied();
    this.queuedBytes = 0;
    for (let i = head; i < queue.length; i++) {
      const done = queue[i]!.done;
      if (done) callBack(done, error);
    }
  }

  /**
   * The scheduler framed `framed` more writes. The last framed: the emptied array goes, so an idle channel holds
   * none. Otherwise the head moves on, and the framed writes leave the array once they are most of it.
   */
  framedWrites(framed: number): void {
    const queue = this.queue;
    const head = this.queueHead + framed;
    if (head === queue.length) {
      this.queueEmptied();
    } else if (head > 32 && head * 2 > queue.length) {
      queue.splice(0, head);
      this.queueHead = 0;
    } else {
      for (let i = this.queueHead; i < head; i++) queue[i] = FRAMED;
      this.queueHead = head;
    }
  }

  /** No write is left queued: back to the shared empty queue. */
  queueEmptied(): void {
    this.queue = NO_WRITES;
    this.queueHead = 0;
  }

  /** Records that this side's FIN went out. */
  markFinSent(): void {
    this.finSent = true;
    if (this.state === 'remote-closed') this.state = 'closed';
    else if (this.state !== 'closed' && this.state !== 'reset') this.state = 'local-closed';
  }

  /** Records the peer's half-close. */
  markRemoteFin(): void {
    this.remoteFin = true;
    if (this.state === 'local-closed') this.state = 'closed';
    else if (this.state !== 'closed' && this.state !== 'reset') this.state = 'remote-closed';
  }

  /** The SYN went out. */
  markSynSent(): void {
    if (this.state === 'init') this.state = 'syn-sent';
  }

  /** The peer's ACK arrived, or the application accepted an inbound channel. */
  markEstablished(): void {
    if (this.state === 'syn-sent' || this.state === 'syn-received' || this.state === 'init') {
      this.state = 'established';
    }
  }

  /**
   * Dialled here and not acknowledged by the peer: its application never took it. (Not the state's name: a
   * channel half-closed before its ACK came is `local-closed` and still unacknowledged.)
   */
  get unaccepted(): boolean {
    return this.outbound && (this.awaitingAck || this.state === 'init');
  }

  /**
   * The clean-finish rule: this side ended writing, and the peer ended too or this side stopped reading. An
   * endpoint let go of in this state needs no reset: the FINs close it (closed for reading, it waits in the
   * session for the peer's FIN, and data the peer still sends, beyond a few small writes, draws a reset).
   */
  get finishedCleanly(): boolean {
    return this.localFin && (this.remoteFin || this.readClosed || this.readCut);
  }

  /** Data that arrives is discarded (and credited), not handed on: `readClosed` or `readCut`. */
  get dropsData(): boolean {
    return (this.flags & (FLAG_BITS.readClosed | FLAG_BITS.readCut)) !== 0;
  }

  /** True once both sides have sent FIN. */
  get bothClosed(): boolean {
    return this.finSent && this.remoteFin;
  }
}

// Not enumerable, not configurable: `defineProperty`'s defaults.
for (const [name, bit] of Object.entries(FLAG_BITS)) {
  Object.defineProperty(ChannelState.prototype, name, {
    get(this: ChannelState): boolean {
      return (this.flags & bit) !== 0;
    },
    set(this: ChannelState, on: boolean): void {
      this.flags = on ? this.flags | bit : this.flags & ~bit;
    },
  });
}
