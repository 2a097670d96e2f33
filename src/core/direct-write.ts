/**
 * The direct route of a large write (docs/design.md, "The send path"): the common case of a bulk transfer
 * from Node (one channel, window open, nothing else to send) framed and handed to the transport at once, in a
 * write of its own, without the channel's queue, the scheduler's rings or the flush's microtask.
 *
 * It is a part the adapters pass in (as the multiplex codec is), not one every session makes: the Node
 * sessions, `LightSession` and the libp2p muxer give {@link directWrites} to the session; the browser's
 * `WebSession` does not, so a page's bundle leaves it out (a page's writes come through `WebChannel` in
 * pieces anyway, and a WebSocket sends each message as one copy). Without it, every write takes the queue.
 *
 * It owns only the framing of such a write and its window and byte counts. Whether the table may use it is
 * the table's (`ChannelTable.write`: an open channel, nothing queued or owed); handing the parts to the
 * transport, backpressure and failures are the writer's (`FrameWriter.send`).
 * @module
 */
import type { ChannelState, WriteDone } from './channel-state.js';
import { DIRECT_WRITE_MIN } from './channels.js';
import type { WireCodec } from './codec.js';
import { FrameType } from './frame.js';
import type { WriteScheduler } from './scheduler.js';
import { BATCH_LIMIT } from './writer.js';

/**
 * Writes `data` on `channel` at once, as much of it as the peer's window and one batch allow, and returns the
 * bytes written: 0 when the route is not open (see {@link directWrites}). `done` goes with the write when all
 * of `data` went; otherwise the caller queues the rest with it. The caller has checked the channel's side:
 * open (SYN sent, nothing owed), nothing queued.
 */
export type DirectWrite = (channel: ChannelState, data: Uint8Array, done: WriteDone | null) => number;

/**
 * What the route needs of the session's writer (`FrameWriter`, writer.ts): whether a write may start now, and
 * the write itself. (Named here so that this module's public type reaches no internal one.)
 */
export interface DirectWriteTarget {
  readonly ready: boolean;
  send(parts: Uint8Array[], done: readonly WriteDone[], bytes: number, frames: number, payloadBytes: number): boolean;
}

/** Makes a session's {@link DirectWrite} from its parts: what an adapter passes to `MuxSession` to have one. */
export type DirectWriteRoute = (
  writer: DirectWriteTarget,
  scheduler: WriteScheduler,
  codec: WireCodec,
  allocate: (size: number) => Uint8Array,
) => DirectWrite;

/** A write that completes no caller's write (a part of it is queued, or nobody asked): shared, never written to. */
const NO_CALLBACKS: readonly WriteDone[] = [];

/**
 * The direct route. A write comes this way only when it is large (`DIRECT_WRITE_MIN`, channels.ts), and goes
 * only when the writer has nothing else to do: nothing waiting in the scheduler (it would be overtaken: fairness and order are the
 * scheduler's), the transport neither blocked nor gone, no batch being written; and only with frames large
 * enough for it (not the multiplex format's).
 */
export const directWrites: DirectWriteRoute = (writer, scheduler, codec, allocate) => (channel, data, done) => {
  if (!writer.ready || !scheduler.idle) return 0;
  const window = channel.sendWindow;
  const size = Math.min(data.length, window, BATCH_LIMIT);
  if (size <= 0) return 0;
  const maxFrame = scheduler.maxFrameSize;
  if (maxFrame < DIRECT_WRITE_MIN) return 0;
  const parts: Uint8Array[] = [];
  let bytes = 0;
  let frames = 0;
  for (let at = 0; at < size; at += maxFrame) {
    const length = size - at < maxFrame ? size - at : maxFrame;
    const header = allocate(codec.maxEncodedHeader);
    const written = codec.encode(header, 0, FrameType.data, 0, channel.id, length);
    parts.push(
      written === header.length ? header : header.subarray(0, written),
      length === data.length ? data : data.subarray(at, at + length),
    );
    bytes += written + length;
    frames++;
  }
  channel.sendWindow = window - size;
  channel.sent += size;
  writer.send(parts, done === null || size < data.length ? NO_CALLBACKS : [done], bytes, frames, size);
  return size;
};
