/**
 * The transport contract between the protocol core and whatever carries its bytes (a Node stream, a
 * WebSocket, an in-memory pipe). Adapters in `src/node/` (and later for the browser) implement it.
 * @module
 */

/** Events a transport reports to the session. */
export interface TransportEvents {
  // `this: void`: a transport may hand these on detached (`stream.on('data', events.data)`).
  /**
   * Bytes arrived. `chunk` becomes the session's: it may hand views of it to channels, which keep them until
   * the application reads them, so a transport must not reuse or change it afterwards (hand over a fresh
   * array each time, as Node streams, WebSockets and Web Streams do).
   */
  data(this: void, chunk: Uint8Array): void;
  /** The transport can take more writes after `write` returned false. */
  drain(this: void): void;
  /** The peer ended its side (end of file). */
  end(this: void): void;
  /**
   * The transport failed. With `failsIdle`, the session fails with it even with no channel open: the
   * connection never came up (refused, a TLS handshake that failed, a WebSocket that never opened), or failed
   * as no peer ends a working connection (a TLS alert). Without it, the failure of an open connection (a peer
   * that resets it) ends an idle session cleanly.
   */
  error(this: void, error: Error, failsIdle?: boolean): void;
  /** The transport is closed in both directions; no more events follow. */
  close(this: void): void;
  /** The connection came up, from a transport whose `isConnecting()` said true when the session started. */
  open?(this: void): void;
}

/** A duplex byte transport. */
export interface Transport {
  /** Begins delivering events. Called once, by the session's constructor. */
  start(events: TransportEvents): void;
  /**
   * Writes `parts` in order as one batch; `done` is called once, when the bytes were handed to the operating
   * system (or failed). Returns false when the caller should wait for `drain` before writing more.
   */
  write(parts: Uint8Array[], done: (error?: Error | null) => void): boolean;
  /** Stops delivering `data` until `resume` (the session's last-resort memory bound). */
  pause(): void;
  /** Delivers `data` again after `pause`. */
  resume(): void;
  /** Flushes what was written, then ends this side; `close` follows once the peer ends too. */
  end(): void;
  /**
   * Closes at once, dropping anything unwritten; the `done` of every write not yet reported should still be called,
   * with an error (a channel whose last bytes were in the transport's hands hears of its end only so).
   */
  destroy(error?: Error): void;
  /**
   * Optional: asked right after `start()`, true while the connection is still coming up (a socket handed over
   * while it connects, a TLS handshake not done, a WebSocket still connecting); the transport then reports
   * `events.open()` once it is up. Keep-alive's first ping waits for that, and the session fails with
   * `TransportClosedError` if it has not come after `openTimeout`. Writes made meanwhile wait in the transport.
   * (A method rather than a property, so that a wrapper made by spreading a transport, `{ ...base, write }`,
   * still asks the transport itself.)
   */
  isConnecting?(): boolean;
  /**
   * Optional: true when bytes that came while the transport was paused may be dropped if it closes meanwhile (a
   * libp2p connection discards what it holds for a paused reader at its close). The session then does not pause
   * it between turns of its read time slice (its decoder holds what comes instead) until it holds 4 MiB; it
   * pauses it at its memory bound too.
   */
  readonly dropsPausedData?: boolean;
  /**
   * Optional: true when `pause()` cannot stop the peer's bytes (a browser's WebSocket). What comes meanwhile is
   * taken all the same; past four times `maxSessionBuffered` and 16 MiB of what waits unread (on yamux, the waiting
   * chunks' own cost, since its windows bound the bytes), the session fails with `ProtocolError`.
   */
  readonly cannotPause?: boolean;
  /**
   * Optional: allocates a buffer for outgoing frames and for received payloads copied out of a larger read (e.g.
   * Node's `Buffer.allocUnsafeSlow`). Each its own `ArrayBuffer`: a slice of a shared pool, kept unread, pins the pool.
   */
  allocate?(size: number): Uint8Array;
}
