/**
 * A libp2p `Stream` on a muxwire channel. libp2p's `AbstractStream` (`@libp2p/utils`) keeps the stream's
 * libp2p-side state (statuses, read and write buffers, 'message'/'drain'/'close' events, the async iterator),
 * exactly as every libp2p muxer's streams do; the channel under it does the yamux part: windows, fragments,
 * half-close, resets. The channel is a core `LightChannel` (events, no Node streams), so this runs in
 * browsers too, and opening one costs no `Duplex`.
 * @module
 */
import type { AbortOptions, Logger, MessageStreamDirection, StreamOptions } from '@libp2p/interface';
import { AbstractStream, type SendResult } from '@libp2p/utils';
import { ChannelResetError } from '../core/errors.js';
import type { LightChannel } from '../core/light-channel.js';
import { toLibp2pError } from './errors.js';

/** What a {@link MuxwireStream} is made with. */
/** libp2p's byte list (from the `uint8arraylist` version that `@libp2p/utils` itself uses). */
type ByteList = Parameters<AbstractStream['sendData']>[0];

export interface MuxwireStreamInit extends StreamOptions {
  direction: MessageStreamDirection;
  log: Logger;
}

export class MuxwireStream extends AbstractStream {
  /** The yamux stream id (odd when the client opened it, even when the server did). */
  readonly streamId: number;
  readonly #channel: LightChannel;

  /** @internal Streams are made by the muxer (`createStream()`, or when the peer opens one). */
  constructor(channel: LightChannel, init: MuxwireStreamInit) {
    super({ ...init, id: String(channel.id) });
    this.streamId = channel.id;
    this.#channel = channel;
    // Reading flows from the start: data goes to libp2p's read buffer (which emits it, or holds it up to
    // `maxReadBufferLength`), as with libp2p's yamux; `pause()` pauses the channel, whose window then stops
    // the peer.
    channel.on('data', (chunk: Uint8Array) => this.onData(chunk));
    channel.on('end', () => this.onRemoteCloseWrite());
    channel.on('drain', () => this.onMuxerDrain());
    channel.on('error', (error: Error) => this.#onChannelError(error));
  }

  /** Reports a channel's failure as libp2p does: a peer's reset, or the connection failing under it. */
  #onChannelError(error: Error): void {
    if (this.status !== 'open') return; // this side aborted it (the reason is already reported)
    if (error instanceof ChannelResetError) this.onRemoteReset();
    else this.onTransportClosed(toLibp2pError(error));
  }

  /** @internal Queues bytes on the channel; 'drain' follows once it is under its high-water mark again. */
  sendData(data: ByteList): SendResult {
    const channel = this.#channel;
    let canSendMore = true;
    for (const chunk of data) canSendMore = channel.write(chunk);
    return { sentBytes: data.byteLength, canSendMore };
  }

  /** @internal RST to the peer; queued bytes are dropped. */
  sendReset(error: Error): void {
    this.#channel.destroy(error);
  }

  /** @internal FIN after everything written; resolves once those bytes reached the connection. */
  async sendCloseWrite(options?: AbortOptions): Promise<void> {
    const channel = this.#channel;
    const signal = options?.signal;
    signal?.throwIfAborted();
    if (channel.destroyed) return; // failed meanwhile: its error reaches the stream on its own
    await new Promise<void>((resolve, reject) => {
      const settle = (): void => {
        channel.off('finish', settle);
        channel.off('close', settle);
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      const onAbort = (): void => {
        channel.off('finish', settle);
        channel.off('close', settle);
        reject(signal!.reason);
      };
      channel.on('finish', settle);
      channel.on('close', settle);
      signal?.addEventListener('abort', onAbort, { once: true });
      channel.end();
    });
  }

  /**
   * @internal yamux has no frame that asks the peer to stop sending: as with libp2p's yamux, nothing is sent,
   * and what still arrives is credited and dropped.
   */
  async sendCloseRead(options?: AbortOptions): Promise<void> {
    options?.signal?.throwIfAborted();
  }

  /** @internal The channel stops reading: its window, no longer refilled, stops the peer. */
  sendPause(): void {
    this.#channel.pause();
  }

  /** @internal */
  sendResume(): void {
    this.#channel.resume();
  }
}
