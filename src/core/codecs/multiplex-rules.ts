/**
 * The multiplex format's rules where yamux has windows and half-close (docs/multiplex-codec.md), made for each
 * session by the multiplex codec, so that they come into a bundle only with `multiplexCodec`:
 * - Without windows, the only backpressure is to stop reading the transport while a channel holds more than
 *   a window (`overfull`), and to read again once the application has read it down to a window.
 * - Without half-close, the peer's close ends both directions: this side's is closed too, answered once in
 *   kind, and data still queued to send fails. This side's close ends the peer's direction as well.
 * @module
 */
import { type ChannelState, Pending } from '../channel-state.js';
import type { FormatRules } from '../codec.js';
import { MuxError, writeAfterPeerClose } from '../errors.js';
import type { SessionMemory } from '../flow.js';
import type { ResolvedOptions } from '../options.js';
import type { ReadGate } from '../read-gate.js';
import type { WriteScheduler } from '../scheduler.js';
import type { FrameWriter } from '../writer.js';

export class MultiplexRules implements FormatRules {
  readonly #options: ResolvedOptions;
  readonly #memory: SessionMemory;
  readonly #gate: ReadGate;
  readonly #scheduler: WriteScheduler;
  readonly #writer: FrameWriter;
  readonly #relieveMemory: () => void;
  constructor(
    options: ResolvedOptions,
    memory: SessionMemory,
    gate: ReadGate,
    scheduler: WriteScheduler,
    writer: FrameWriter,
    relieveMemory: () => void,
  ) {
    this.#options = options;
    this.#memory = memory;
    this.#gate = gate;
    this.#scheduler = scheduler;
    this.#writer = writer;
    this.#relieveMemory = relieveMemory;
  }

  /**
   * Bytes handed to the application and not read yet. Not `rx.buffered`: that counts a frame's whole length
   * from its header on, and a frame may be up to 16 MiB, most of it still to arrive, which reading would then
   * wait for while it waits for reading.
   */
  #unread(channel: ChannelState): number {
    return channel.delivered - channel.rx.consumed;
  }

  delivered(channel: ChannelState): void {
    if (!channel.overfull && this.#unread(channel) > this.#options.initialWindow) {
      channel.overfull = true;
      this.#gate.overfull++;
    }
  }

  read(channel: ChannelState, wanted = 0): void {
    // (A reader waiting for a record larger than a window has reading go on until it holds the record.)
    const unread = this.#unread(channel);
    if (channel.overfull && (unread <= this.#options.initialWindow || unread < wanted)) this.#notOverfull(channel);
  }

  /** `channel` no longer holds reading back: reading resumes once no other channel (nor memory) does. */
  #notOverfull(channel: ChannelState): void {
    channel.overfull = false;
    this.#gate.overfull--;
    if (this.#gate.overfull === 0 && !this.#memory.underPressure) this.#relieveMemory();
  }

  released(channel: ChannelState): void {
    if (channel.overfull) {
      channel.overfull = false;
      this.#gate.overfull--;
    }
  }

  remoteClosed(channel: ChannelState): void {
    // Our close (a RST on this format) already left: nothing more to send. If it only waits behind queued
    // data (end() came first), that data goes no further: the peer closed, and data after its RST would be
    // for a closed pipe.
    if (channel.finSent) return;
    const lost = channel.queuedBytes > 0;
    if (lost) {
      // Writes the peer will never take fail the channel, as a reset would (the endpoint first, so that it
      // fails as a channel does, with an 'error' only for a listener, and not by a write's error).
      const error = new MuxError(
        'ERR_MUX_CHANNEL_CLOSED',
        `channel ${channel.id} was closed by the peer before this data was sent (the multiplex format has no half-close)`,
      );
      channel.endpoint.fail(error);
      channel.dropQueue(error);
    }
    channel.localFin = true;
    channel.pending |= Pending.fin;
    this.#scheduler.scheduleControl(channel);
    this.#writer.schedule();
    // Nothing was lost: the endpoint's writing ends as end() would end it (its close is on its way already), so
    // the channel closes once what arrived is read.
    if (!lost) channel.endpoint.writingEnded?.();
  }

  localClosed(channel: ChannelState): void {
    // Our close is a RST: the peer forgets the channel, and this side reads no more either. What the peer sent
    // before it heard is dropped as it comes (`readCut`: credited, as after `closeRead()`); the reader gets its
    // end after what it already has. The channel stays in the session until the peer answers, so that `close()`
    // waits for it. (Data kept coming into a channel ended unread, and once it held more than a window, the
    // session stopped reading for good; a peer that never answered the RST kept the channel from ever ending.)
    if (channel.remoteFin) return;
    channel.readCut = true;
    channel.endpoint.remoteEnded();
    // What it holds can no longer grow (it still counts against maxSessionBuffered): it holds reading back no
    // more, or the peer's answer would wait unread behind it (close() then ran to its timeout).
    if (channel.overfull) this.#notOverfull(channel);
  }

  keepsClosed(channel: ChannelState): boolean {
    const endpoint = channel.endpoint;
    return channel.awaitingAccept || (!endpoint.destroyed && endpoint.bufferedBytes > 0);
  }

  transportGone(channels: Iterable<ChannelState>, closed: (channel: ChannelState) => void): void {
    // The peer closed these and this side's answer (queued by `remoteClosed`) had not gone when the transport
    // ended: as with one that went, they are closed both ways, handed over and read (the original's client
    // dials, writes, closes and exits; the last closes and the transport's end arrive together).
    for (const channel of channels) {
      if (channel.remoteFin && !channel.finSent) {
        channel.markFinSent();
        closed(channel);
      }
    }
  }

  writeRefusal(channel: ChannelState): Error | undefined {
    return channel.remoteFin ? writeAfterPeerClose(channel.id) : undefined;
  }
}
