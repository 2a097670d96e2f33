/**
 * The write scheduler: decides which frame goes next and packs frames into as few transport writes as it can.
 *
 * Order of service in each batch:
 * 1. session frames (Ping, Go Away, refusals of unwanted SYNs), oldest first;
 * 2. channel control frames (RST, Window Update, SYN/ACK without data, FIN after a channel's data), oldest
 *    first;
 * 3. data, round-robin between channels, at most `maxFrameSize` bytes per channel per turn, so a bulk
 *    transfer delays a small message on another channel by at most one fragment per turn.
 *
 * A batch copies headers and small payloads into one staging buffer and references large payloads in place
 * (the caller's bytes are not touched again until the transport reports the batch written).
 * @module
 */
import { type ChannelState, Pending, type QueuedWrite, type WriteDone } from './channel-state.js';
import type { WireCodec } from './codec.js';
import { yamuxCodec } from './codecs/yamux.js';
import { Flag, FrameType } from './frame.js';

/**
 * Payloads up to this size are copied next to their header; larger ones are written from the caller's bytes.
 * @hidden (internal: `muxwire/core` exports it at run time only, for the micro-benchmarks)
 */
export const COPY_LIMIT = 2048;
/** The first staging buffer of a batch is small (Node serves it from its pool); later ones double. */
const FIRST_STAGING = 2048;
const MAX_STAGING = 64 * 1024;

/** Bytes copied by hand rather than through a view and `set()` (a view is an allocation of its own). */
const HAND_COPY_LIMIT = 256;

/** Copies `source[start, end)` into `target` at `at`, without allocating for short runs. */
export function copyBytes(target: Uint8Array, at: number, source: Uint8Array, start: number, end: number): void {
  if (end - start <= HAND_COPY_LIMIT) {
    for (let i = start; i < end; i++) target[at++] = source[i]!;
  } else {
    target.set(start === 0 && end === source.length ? source : source.subarray(start, end), at);
  }
}

/**
 * The staging buffer batches start in, shared by every session's batch (2 KiB that an idle session would
 * otherwise hold each): lent to one batch at a time, from its first bytes to its `reset()`. A batch built while
 * another holds it (a session written to from inside another's write) starts in a fresh buffer instead.
 */
export class Scratch {
  #bytes: Uint8Array | null = null;
  #holder: FrameBatch | null = null;

  constructor(readonly size: number) {}

  /** The buffer, lent to `batch`; null while another batch holds it. */
  lend(batch: FrameBatch): Uint8Array | null {
    if (this.#holder !== null && this.#holder !== batch) return null;
    this.#holder = batch;
    return (this.#bytes ??= new Uint8Array(this.size));
  }

  /** `batch` is done with the buffer. */
  giveBack(batch: FrameBatch): void {
    if (this.#holder === batch) this.#holder = null;
  }
}

/**
 * One transport write being assembled. A session keeps one and `reset()`s it after each write: headers and
 * small payloads first go to a scratch buffer (a {@link Scratch}) and leave it as one exact-size copy, so a
 * small write (a request, a window update) costs one buffer; larger batches continue in fresh staging buffers.
 * @hidden (internal: `muxwire/core` exports it at run time only, for the micro-benchmarks)
 */
export class FrameBatch {
  /** The batch's parts so far. A new array after each `reset()` (the transport may not keep it, but a caller may). */
  parts: Uint8Array[] = [];
  /** Completions of the writes in this batch. A new array after a `reset()` that follows a non-empty batch. */
  done: WriteDone[] = [];
  /** Bytes in the batch so far. */
  bytes = 0;
  /** Frames (headers) in the batch so far. */
  frames = 0;
  /** Payload bytes in the batch so far. */
  payloadBytes = 0;
  #staging: Uint8Array | null = null;
  #stagingStart = 0;
  #stagingUsed = 0;
  /** The scratch's buffer while this batch holds it (a batch asks for it once: at its first bytes). */
  #scratchBytes: Uint8Array | null = null;

  readonly #allocate: (size: number) => Uint8Array;
  readonly #codec: WireCodec;
  readonly #scratch: Scratch | null;
  constructor(
    allocate: (size: number) => Uint8Array,
    codec: WireCodec = yamuxCodec,
    /** Reused between batches; without it every batch starts in a fresh staging buffer. */
    scratch: Scratch | null = null,
  ) {
    this.#allocate = allocate;
    this.#codec = codec;
    this.#scratch = scratch;
  }

  /** Empties the batch for the next write. The previous `parts` and (if non-empty) `done` stay with their holder. */
  reset(): void {
    this.parts = [];
    if (this.done.length > 0) this.done = [];
    this.bytes = 0;
    this.frames = 0;
    this.payloadBytes = 0;
    this.#staging = null;
    this.#stagingStart = 0;
    this.#stagingUsed = 0;
    if (this.#scratchBytes !== null) {
      this.#scratchBytes = null;
      this.#scratch!.giveBack(this);
    }
  }

  /** Appends a frame header, in the codec's format. */
  header(type: number, flags: number, streamId: number, length: number): void {
    const staging = this.#reserve(this.#codec.maxEncodedHeader);
    const written = this.#codec.encode(staging, this.#stagingUsed, type, flags, streamId, length);
    this.#stagingUsed += written;
    this.bytes += written;
    if (written > 0) this.frames++;
  }

  /** Appends payload bytes: copied when small, referenced when large. */
  payload(data: Uint8Array): void {
    const length = data.length;
    if (length === 0) return;
    this.bytes += length;
    this.payloadBytes += length;
    if (length <= COPY_LIMIT) {
      const staging = this.#reserve(length);
      staging.set(data, this.#stagingUsed); // the whole array: no view to allocate
      this.#stagingUsed += length;
      return;
    }
    this.#cutStaging();
    this.parts.push(data);
  }

  /** The batch's parts, in order. */
  finish(): Uint8Array[] {
    this.#cutStaging();
    return this.parts;
  }

  #reserve(length: number): Uint8Array {
    const staging = this.#staging;
    if (staging !== null && staging.length - this.#stagingUsed >= length) return staging;
    this.#cutStaging();
    const scratch = this.#scratch;
    if (staging === null && scratch !== null && scratch.size >= length) {
      const bytes = scratch.lend(this);
      if (bytes !== null) {
        this.#scratchBytes = bytes;
        this.#staging = bytes;
        this.#stagingStart = 0;
        this.#stagingUsed = 0;
        return bytes;
      }
    }
    const next = staging === null ? FIRST_STAGING : Math.min(staging.length * 2, MAX_STAGING);
    const fresh = this.#allocate(Math.max(next, length));
    this.#staging = fresh;
    this.#stagingStart = 0;
    this.#stagingUsed = 0;
    return fresh;
  }

  #cutStaging(): void {
    const staging = this.#staging;
    if (staging === null || this.#stagingUsed <= this.#stagingStart) return;
    if (staging === this.#scratchBytes) {
      // The scratch is reused by the next batch: what leaves is a copy.
      const copy = this.#allocate(this.#stagingUsed - this.#stagingStart);
      copyBytes(copy, 0, staging, this.#stagingStart, this.#stagingUsed);
      this.parts.push(copy);
    } else {
      this.parts.push(staging.subarray(this.#stagingStart, this.#stagingUsed));
    }
    this.#stagingStart = this.#stagingUsed;
  }
}

/**
 * What the session learns from the scheduler as frames are packed.
 * @hidden (internal: `muxwire/core` exports it at run time only, for the micro-benchmarks)
 */
export interface SchedulerHooks {
  /**
   * @internal A frame carrying these flags (SYN, ACK, FIN, RST bits) for `channel` was packed. For a FIN, returns
   * the completion the channel's `end()` asked for, if any: it is called with the batch's.
   */
  onFlagsSent(channel: ChannelState, flags: number): WriteDone | undefined;
  /** @internal `channel` spent the peer's window with data still queued (counted by the session's stats). */
  onWindowStall?(channel: ChannelState): void;
  /**
   * @internal A write of `channel`'s, queued in place, no longer holds the bytes it was queued with (its buffer
   * was transferred, which detaches it, or resized): nothing of it was framed; the channel is to be reset.
   */
  onBrokenWrite?(channel: ChannelState): void;
  /** @internal A ping (SYN) with this value was packed: it leaves now (keep-alive counts its age from here). */
  onPingSent?(value: number): void;
}

/**
 * Whether the queued writes from `head` on still hold the `size` bytes a frame is to carry. Writes are queued
 * in place (an application's array, not a copy): one whose buffer was transferred since (to a worker, by
 * `postMessage` or `structuredClone`) is detached and holds no bytes, and a view of a resizable buffer may
 * shrink. A frame whose header announced bytes that do not follow would corrupt the whole connection.
 */
function holdsFrame(queue: readonly QueuedWrite[], head: number, size: number): boolean {
  for (let i = head, left = size; left > 0; i++) {
    const item = queue[i];
    // (Shrunk or detached: what was queued is no longer all there. Grown: only what was queued is sent.)
    if (item === undefined || item.data.length < item.length) return false;
    left -= item.length - item.offset;
  }
  return true;
}

/** Flattened session frames: type, flags, stream id, length. */
const SESSION_FRAME_FIELDS = 4;

export class WriteScheduler {
  readonly #sessionFrames: number[] = [];
  #controlHead: ChannelState | null = null;
  #controlTail: ChannelState | null = null;
  #dataHead: ChannelState | null = null;
  #dataTail: ChannelState | null = null;
  /** The session ended (`clear()`): nothing is queued any more. */
  #cleared = false;

  /** The largest Data frame payload this side sends (`maxFrameSize`, capped by the codec's fragment size). */
  declare readonly maxFrameSize: number;
  readonly #hooks: SchedulerHooks;
  constructor(maxFrameSize: number, hooks: SchedulerHooks) {
    this.maxFrameSize = maxFrameSize;
    this.#hooks = hooks;
  }

  /** Session frames waiting (Ping, Go Away, refusals). */
  get sessionFrameCount(): number {
    return this.#sessionFrames.length / SESSION_FRAME_FIELDS;
  }

  /**
   * Answers to the peer's pings among them: keep-alive bounds these alone (a ping flood), so that refusals
   * and Go Away queued at the same moment never cost a live peer its answer.
   */
  queuedPongs = 0;

  /** True when nothing at all is waiting to be sent. */
  get idle(): boolean {
    return this.#sessionFrames.length === 0 && this.#controlHead === null && this.#dataHead === null;
  }

  /**
   * Channels the peer opened that this side reset (the application let them go, or they broke a rule), whose
   * RST waits on the control list: the receive path bounds them with the refusals (see `#openInbound`), since
   * each keeps its channel's record until it leaves.
   */
  inboundResetsOwed = 0;

  /** Frames owed to the peer that wait for the transport: session frames, and the RSTs counted above. */
  get framesOwed(): number {
    return this.sessionFrameCount + this.inboundResetsOwed;
  }

  /** Queues a header-only frame that belongs to no live channel. */
  queueSessionFrame(type: number, flags: number, streamId: number, length: number): void {
    if (type === FrameType.ping && flags === Flag.ack) this.queuedPongs++;
    this.#sessionFrames.push(type, flags, streamId, length);
  }

  /** Puts a channel on the control list (it owes flags or a window increment). */
  scheduleControl(channel: ChannelState): void {
    if (channel.inControl || this.#cleared) return;
    channel.inControl = true;
    channel.nextControl = null;
    if (this.#controlTail === null) this.#controlHead = channel;
    else this.#controlTail.nextControl = channel;
    this.#controlTail = channel;
  }

  /** Puts a channel on the data ring if it can send data now. */
  scheduleData(channel: ChannelState): void {
    // (No check of the session's end here, on every write's path: a channel failed with its session has
    // dropped its queue, so has nothing sendable.)
    if (channel.inData || !channel.hasSendableData) return;
    channel.inData = true;
    channel.nextData = null;
    if (this.#dataTail === null) this.#dataHead = channel;
    else this.#dataTail.nextData = channel;
    this.#dataTail = channel;
  }

  /**
   * The session ended: nothing queued will go. Lets go of the channels on the lists (each links to the next, and
   * holds its endpoint and all the application hung on it: an application that keeps its ended session would
   * keep them all), and queues nothing from now on.
   */
  clear(): void {
    this.#cleared = true;
    for (let channel = this.#controlHead; channel !== null;) {
      const next: ChannelState | null = channel.nextControl;
      channel.nextControl = null;
      channel.inControl = false;
      channel = next;
    }
    for (let channel = this.#dataHead; channel !== null;) {
      const next: ChannelState | null = channel.nextData;
      channel.nextData = null;
      channel.inData = false;
      channel = next;
    }
    this.#controlHead = this.#controlTail = this.#dataHead = this.#dataTail = null;
    this.#sessionFrames.length = 0;
    this.queuedPongs = 0;
    this.inboundResetsOwed = 0;
  }

  /** Packs frames into `batch` until it holds at least `limit` bytes or nothing is left. */
  fill(batch: FrameBatch, limit: number): void {
    this.#fillSessionFrames(batch, limit);
    while (this.#controlHead !== null && batch.bytes < limit) {
      const channel = this.#controlHead;
      this.#controlHead = channel.nextControl;
      if (this.#controlHead === null) this.#controlTail = null;
      channel.nextControl = null;
      channel.inControl = false;
      this.#packControl(channel, batch);
    }
    while (this.#dataHead !== null && batch.bytes < limit) {
      const channel = this.#dataHead;
      this.#dataHead = channel.nextData;
      if (this.#dataHead === null) this.#dataTail = null;
      channel.nextData = null;
      channel.inData = false;
      if (!channel.hasSendableData) continue;
      if (this.#packData(channel, batch)) this.scheduleData(channel);
    }
  }

  #fillSessionFrames(batch: FrameBatch, limit: number): void {
    const frames = this.#sessionFrames;
    let i = 0;
    for (; i < frames.length && batch.bytes < limit; i += SESSION_FRAME_FIELDS) {
      if (frames[i] === FrameType.ping) {
        if (frames[i + 1] === Flag.ack) this.queuedPongs--;
        else this.#hooks.onPingSent?.(frames[i + 3]!);
      }
      batch.header(frames[i]!, frames[i + 1]!, frames[i + 2]!, frames[i + 3]!);
    }
    if (i === frames.length) frames.length = 0;
    else frames.splice(0, i);
  }

  #packControl(channel: ChannelState, batch: FrameBatch): void {
    if ((channel.pending & Pending.rst) !== 0) {
      // An accepted channel reset before its ACK left sends both in one frame, ACK first in meaning: the
      // dialler learns its channel was taken (then reset), not refused.
      const flags = (channel.pending & Pending.ack) !== 0 ? Flag.ack | Flag.rst : Flag.rst;
      if (!channel.outbound) this.inboundResetsOwed--;
      channel.pending = 0;
      channel.pendingIncrement = 0;
      batch.header(FrameType.windowUpdate, flags, channel.id, 0);
      this.#hooks.onFlagsSent(channel, flags);
      return;
    }
    const openFlags = channel.pending & (Pending.syn | Pending.ack);
    // SYN/ACK ride on the channel's first data frame when there is data to carry them and nothing else to say.
    if (openFlags !== 0 && channel.pendingIncrement === 0 && channel.hasSendableData) {
      this.scheduleData(channel);
      return;
    }
    const fin = (channel.pending & Pending.fin) !== 0 && channel.queuedBytes === 0 ? Flag.fin : 0;
    const flags = openFlags | fin;
    if (flags !== 0 || channel.pendingIncrement > 0) {
      batch.header(FrameType.windowUpdate, flags, channel.id, channel.pendingIncrement);
      channel.pendingIncrement = 0;
      channel.pending &= ~flags;
      if (flags !== 0) {
        const finished = this.#hooks.onFlagsSent(channel, flags);
        if (finished !== undefined) batch.done.push(finished);
      }
    }
    this.scheduleData(channel);
  }

  /** Packs one Data frame of `channel`'s; false when its queue no longer holds the bytes (see `holdsFrame`). */
  #packData(channel: ChannelState, batch: FrameBatch): boolean {
    let size = Math.min(this.maxFrameSize, channel.sendWindow, channel.queuedBytes);
    if (channel.frameEachWrite) {
      const first = channel.queue[channel.queueHead]!;
      if (first.length - first.offset < size) size = first.length - first.offset;
    }
    if (size <= 0 || !holdsFrame(channel.queue, channel.queueHead, size)) {
      this.#hooks.onBrokenWrite?.(channel); // (not scheduled again: the reset drops the queue)
      return false;
    }
    // FIN never rides on a Data frame: the Debian Go yamux may drop such a frame's payload. It follows as a
    // Window Update once the queue is empty.
    const flags = channel.pending & (Pending.syn | Pending.ack);
    channel.pending &= ~flags;
    batch.header(FrameType.data, flags, channel.id, size);
    let left = size;
    const queue = channel.queue;
    const head = channel.queueHead;
    // Writes framed whole leave the queue in bulk (`framedWrites`): a shift() each copies the rest of a long
    // queue in V8 (100,000 one-byte writes queued behind a full window took 5 s to frame; a frame per write,
    // as libp2p's messages or a peer granting a byte at a time make, took as long).
    let framed = 0;
    while (left > 0) {
      const item = queue[head + framed]!;
      const available = item.length - item.offset;
      const take = available < left ? available : left;
      batch.payload(take === item.data.length ? item.data : item.data.subarray(item.offset, item.offset + take));
      item.offset += take;
      left -= take;
      if (item.offset === item.length) {
        framed++;
        if (item.done !== null) batch.done.push(item.done);
      }
    }
    if (framed > 0) channel.framedWrites(framed);
    channel.sendWindow -= size;
    channel.queuedBytes -= size;
    channel.sent += size;
    if (channel.sendWindow === 0 && channel.queuedBytes > 0) this.#hooks.onWindowStall?.(channel);
    if (flags !== 0) this.#hooks.onFlagsSent(channel, flags);
    if (channel.queuedBytes === 0 && (channel.pending & Pending.fin) !== 0) this.scheduleControl(channel);
    return true;
  }
}
