/**
 * What a channel may ask of its session, and nothing more: the port every channel adapter (the Node
 * `Channel`, `LightChannel`, a Web Streams channel) is built on. The session hands one port to all its
 * channels; its own internals (the channel table, the decoder and scheduler callbacks, window grants) stay
 * private to it. Each call names the channel's {@link ChannelState}, which the adapter holds from its birth.
 * @module
 */
import type { ChannelState, WriteDone } from './channel-state.js';

/** `S` is the session's type as the application sees it (a `MuxSession` of the adapter's channels). */
export interface ChannelPort<S> {
  /** The session, as the application sees it (what `channel.session` returns). */
  readonly session: S;
  /** `channelHighWaterMark`: bytes a channel may have waiting to be sent before its writes say "wait". */
  readonly highWaterMark: number;
  /** Queues bytes on a channel; `done` (if any) is called when they reached the transport, or failed. */
  write(channel: ChannelState, data: Uint8Array, done: WriteDone | null): void;
  /**
   * Half-closes a channel: FIN goes out after everything already queued on it. `done` (if any) is called once
   * the FIN reached the transport (what a `'finish'` waits for: a transport ended or a session destroyed
   * after it keeps the FIN); not at all if the channel fails first (its endpoint hears of that).
   */
  end(channel: ChannelState, done?: WriteDone): void;
  /**
   * The application reads no more of a channel: data that arrives from now on is discarded and its window
   * credit goes back to the peer at once. The endpoint drops what it holds itself, then calls `readProgress`.
   */
  closeRead(channel: ChannelState): void;
  /** Aborts a channel from this side: RST to the peer (unless it never heard of it), queued writes dropped. */
  reset(channel: ChannelState, error: Error | undefined): void;
  /**
   * The application let go of the channel (destroyed it): it is reset with `error`, unless it is already out
   * of the session or, with no error, it finished cleanly ({@link ChannelState.finishedCleanly}).
   */
  release(channel: ChannelState, error: Error | undefined): void;
  /**
   * The application read some of a channel's data (the endpoint's `bufferedBytes` went down): credit it.
   * `wanted`, from a reader that waits for that many bytes to be buffered before it reads (a Node `read(n)`
   * that found fewer), has the window grow and credit go back at once where they fall short of it.
   */
  readProgress(channel: ChannelState, wanted?: number): void;
  /**
   * The session ended under this channel and has not told it yet (it tells many a batch a turn): tell it now.
   * An endpoint calls it before it counts a write or an end of the application's, so that these meet the
   * channel as told (the session's other calls do it themselves).
   */
  catchUp(channel: ChannelState): void;
}
