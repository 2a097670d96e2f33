/**
 * One channel's protocol state: its named lifecycle state, its send queue and send window, and its receive
 * window. The session drives the transitions; the write scheduler reads and drains the send side.
 * @module
 */
import { ReceiveWindow } from './flow.js';
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
  | 'init' | 'syn-sent' | 'syn-received' | 'established'
  | 'local-closed' | 'remote-closed' | 'closed' | 'reset';

/** What the adapter behind a channel (a Node `Duplex`, a Web stream) must offer the session. */
export interface ChannelEndpoint {
  /** @internal Data arrived; keep it until the application reads it. */
  deliver(data: Uint8Array): void;
  /** @internal The peer half-closed: no more data will arrive. */
  remoteEnded(): void;
  /** @internal The channel ended abnormally (reset by the peer, session failure); fail pending reads and writes. */
  fail(error: Error): void;
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
  offset: number;
  done: WriteDone | null;
}

/** Flags a channel still owes the peer on its next frame. */
export const Pending = {
  syn: 0x1,
  ack: 0x2,
  fin: 0x4,
  rst: 0x8,
} as const;

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
   */
  queue: QueuedWrite[] = NO_WRITES;
  /** Queued bytes not yet framed. */
  queuedBytes = 0;
  /** Payload bytes framed for sending so far (`channel.stats().bytesOut`). */
  sent = 0;
  /** `Pending` flags to send: SYN/ACK ride on the next frame, FIN after the queue, RST at once. */
  pending = 0;
  /** Window increment to announce on the next Window Update. */
  pendingIncrement = 0;
  /** Linked into the scheduler's control list / data ring. */
  inControl = false;
  inData = false;
  nextControl: ChannelState | null = null;
  nextData: ChannelState | null = null;
  /** A SYN sent and no ACK yet (counts against the ACK backlog). */
  awaitingAck = false;
  /** FIN has been packed into a batch. */
  finSent = false;
  /**
   * Each write goes out in Data frames of its own, never sharing one with the next write, so the peer can
   * deliver it as one message. libp2p's streams do so (its compliance suite checks that two `send()`s arrive
   * as two messages); muxwire's own channels pack consecutive writes together.
   */
  frameEachWrite = false;

  // --- receive side ---
  readonly rx: ReceiveWindow;
  /** Payload bytes handed to the endpoint. */
  delivered = 0;
  /** The peer's FIN arrived. */
  remoteFin = false;
  /** This side asked to end: FIN queued (sent once `finSent`). No more data may be queued. */
  localFin = false;
  /** The application stopped reading (`closeRead()`): data that arrives is discarded and credited at once. */
  readClosed = false;
  /** Waiting for session memory to allow a Window Update. */
  withheld = false;
  /** Holds more than a window unread on a codec without windows (the session pauses reading meanwhile). */
  overfull = false;
  /** In the session's table of live channels. */
  live = true;
  /** Dialled and not yet acknowledged: when the open timeout fails it (ms, `performance.now()`), else 0. */
  openDeadline = 0;
  /** Dialled with a signal and not yet acknowledged: the signal and the listener to remove once settled. */
  openAbort: { signal: AbortSignal; onAbort: () => void } | null = null;

  constructor(
    readonly id: number,
    /** Dialled by this side (true) or by the peer (false). */
    readonly outbound: boolean,
    initialWindow: number,
    maxWindow: number,
  ) {
    this.state = outbound ? 'init' : 'syn-received';
    this.rx = new ReceiveWindow(initialWindow, maxWindow);
  }

  /** True when the channel may carry data frames now: SYN allowed, bytes queued, window open. */
  get hasSendableData(): boolean {
    return this.queuedBytes > 0 && this.sendWindow > 0 && (this.pending & Pending.rst) === 0
      && (this.state !== 'init' || (this.pending & Pending.syn) !== 0);
  }

  /** Queues bytes to send; `done` is called when they reached the transport. */
  enqueue(data: Uint8Array, done: WriteDone | null): void {
    const item: QueuedWrite = { data, offset: 0, done };
    if (this.queue.length === 0) this.queue = [item];
    else this.queue.push(item);
    this.queuedBytes += data.length;
  }

  /**
   * Ends the channel abnormally on this side's books: `reset`, its endpoint failed with `error` (first, so the
   * endpoint records the reason before its queued writes fail), its queue dropped. Whether a RST goes to the
   * peer, and taking it out of the session's table, are the session's business.
   */
  fail(error: Error, failEndpoint = true): void {
    this.state = 'reset';
    if (failEndpoint) this.endpoint.fail(error);
    this.dropQueue(error);
  }

  /** Drops every queued write, failing its completion. */
  dropQueue(error: Error): void {
    const queue = this.queue;
    this.queue = NO_WRITES;
    this.queuedBytes = 0;
    for (const item of queue) item.done?.(error);
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
   * session for the peer's FIN, and data the peer still sends draws a reset).
   */
  get finishedCleanly(): boolean {
    return this.localFin && (this.remoteFin || this.readClosed);
  }

  /** True once both sides have sent FIN. */
  get bothClosed(): boolean {
    return this.finSent && this.remoteFin;
  }
}
