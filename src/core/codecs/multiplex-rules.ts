/**
 * The multiplex format's rules where yamux has windows and half-close (docs/multiplex-codec.md), made for each
 * session by the multiplex codec, so that they come into a bundle only with `multiplexCodec`:
 * - Without windows, the only backpressure is to stop reading the transport while a channel holds more than
 *   a window (`overfull`), and to read again once the application has read it down to a window.
 * - Without half-close, the peer's close ends both directions: this side's is closed too, answered once in
 *   kind, and data still queued to send fails.
 * @module
 */
import { type ChannelState, Pending } from '../channel-state.js';
import type { FormatRules } from '../codec.js';
import { MuxError } from '../errors.js';
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

  delivered(channel: ChannelState): void {
    if (!channel.overfull && channel.rx.buffered > this.#options.initialWindow) {
      channel.overfull = true;
      this.#gate.overfull++;
    }
  }

  read(channel: ChannelState): void {
    if (channel.overfull && channel.rx.buffered <= this.#options.initialWindow) {
      channel.overfull = false;
      this.#gate.overfull--;
      if (this.#gate.overfull === 0 && !this.#memory.underPressure) this.#relieveMemory();
    }
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
    if (channel.queuedBytes > 0) {
      channel.dropQueue(
        new MuxError(
          'ERR_MUX_CHANNEL_CLOSED',
          `channel ${channel.id} was closed by the peer before this data was sent (the multiplex format has no half-close)`,
        ),
      );
    }
    channel.localFin = true;
    channel.pending |= Pending.fin;
    this.#scheduler.scheduleControl(channel);
    this.#writer.schedule();
  }

  writeRefusal(channel: ChannelState): Error | undefined {
    if (!channel.remoteFin) return undefined;
    return new MuxError(
      'ERR_MUX_WRITE_AFTER_END',
      `channel ${channel.id} was closed by the peer (the multiplex format has no half-close)`,
    );
  }
}
