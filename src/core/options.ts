/**
 * Session options: their defaults and the one function that validates them.
 * @module
 */

import { MemoryBudget, sharedMemoryBudget } from './budget.js';
import type { Logger } from './observe.js';

/** The yamux specification's initial stream window; peers assume it without saying so. */
export const SPEC_INITIAL_WINDOW = 256 * 1024;

/** The wire formats muxwire speaks. */
export type WireProtocol = 'yamux' | 'multiplex';

/**
 * Options of a session. Every field is optional, and `undefined` is taken as leaving it out; see
 * {@link DEFAULT_OPTIONS} for the defaults. Numeric options are whole numbers in the range each names: a value
 * of another type, or `NaN`, throws `TypeError`; a fraction, `Infinity` or a value out of range `RangeError`.
 */
export interface SessionOptions {
  /**
   * The wire format: `yamux` (default), or `multiplex` to talk to programs built on the original Go package
   * `alecthomas/multiplex` (no windows, half-close, ping or Go Away: see docs/multiplex-codec.md).
   * @defaultValue `'yamux'`
   */
  protocol?: WireProtocol | undefined;
  /**
   * Most channels open at once (both directions together). A dial beyond it throws; an inbound SYN beyond it
   * gets RST.
   * Range: 1 to 2^31−1.
   * @defaultValue 65,536
   */
  maxStreams?: number | undefined;
  /**
   * Most channels the peer opened that are open at once; one more is refused with RST. Keeps room in
   * `maxStreams` for this side's own dials when the peer opens many.
   * Range: 0 to 2^31−1.
   * @defaultValue 2,147,483,647 (no bound of its own)
   */
  maxInboundStreams?: number | undefined;
  /**
   * Most channels this side dialled that are open at once; a dial beyond it throws `StreamLimitError`.
   * Range: 0 to 2^31−1.
   * @defaultValue 2,147,483,647 (no bound of its own)
   */
  maxOutboundStreams?: number | undefined;
  /**
   * Most inbound channels waiting to be accepted; one more is refused with RST (on the multiplex codec, which
   * cannot refuse, reading pauses until the application takes one; keep-alive's probes still read, and queue
   * the channels they find: `maxInboundStreams` is the hard bound there).
   * Range: 1 to 1,000,000.
   * @defaultValue 256
   */
  acceptBacklog?: number | undefined;
  /**
   * Most dialled channels the peer has not acknowledged yet; further SYNs wait (the libp2p "ACK backlog").
   * Range: 1 to 1,000,000.
   * @defaultValue 256
   */
  ackBacklog?: number | undefined;
  /**
   * Receive window each channel starts with, in bytes (at least the spec's 262,144).
   * Range: 262,144 to 2^32−1.
   * @defaultValue 262,144 (256 KiB); 2 MiB for `connectWebSocket` and `createWebSocketServer` sessions
   */
  initialWindow?: number | undefined;
  /**
   * Largest receive window auto-tuning may grow a channel to, in bytes.
   * Range: 262,144 to 2^32−1 (at least `initialWindow`).
   * @defaultValue 67,108,864 (64 MiB)
   */
  maxWindow?: number | undefined;
  /**
   * Cap on bytes received but not yet read, across all channels of the session.
   * Range: 262,144 to 2^53−1.
   * @defaultValue 134,217,728 (128 MiB)
   */
  maxSessionBuffered?: number | undefined;
  /**
   * The budget window growth is also reserved from, shared with other sessions: by default
   * {@link sharedMemoryBudget} (256 MiB per process); `null` for none (only this session's bound applies).
   * @defaultValue {@link sharedMemoryBudget}
   */
  memoryBudget?: MemoryBudget | null | undefined;
  /**
   * Largest Data frame payload this side sends; writes are cut into fragments of this size and interleaved.
   * Range: 1,024 to 16,777,216.
   * @defaultValue 65,536 (64 KiB)
   */
  maxFrameSize?: number | undefined;
  /**
   * Milliseconds from a ping's answer to the next ping; 0 turns keep-alive off (the opening ping and the two
   * RTT probes still go out, with no deadline; a `ping()` keeps its own).
   * Range: 0 to 2^31−1.
   * @defaultValue 30,000
   */
  keepAliveInterval?: number | undefined;
  /**
   * Milliseconds a ping may wait for its answer while nothing at all arrives from the peer; then the session
   * fails (`TimeoutError`, `ERR_MUX_KEEPALIVE_TIMEOUT`). A peer whose bytes keep arriving is alive, just busy
   * (its answer may wait behind its data), so each byte from it moves the deadline to one `keepAliveTimeout`
   * later.
   * Range: 1 to 2^31−1.
   * @defaultValue 10,000
   */
  keepAliveTimeout?: number | undefined;
  /**
   * Milliseconds `close()` waits for open channels to end in both directions (this side's `end()` and the
   * peer's) before resetting them. A channel read to its end but not ended here still counts
   * as open. 0 waits for none: Go Away goes, channels still open are reset at once, and the session ends with
   * `ERR_MUX_CLOSE_TIMEOUT` if any were. See docs/design.md, "Closing".
   * Range: 0 to 2^31−1.
   * @defaultValue 30,000
   */
  closeTimeout?: number | undefined;
  /**
   * Milliseconds a dialled channel may wait for the peer's acknowledgement; then it fails with
   * `ERR_MUX_OPEN_TIMEOUT` and is reset. 0 waits without limit. (Codecs without acknowledgements: no wait.)
   * Also the time a transport handed over while it still connects has to come up; then the session fails
   * with `TransportClosedError` (every codec).
   * Range: 0 to 2^31−1.
   * @defaultValue 75,000
   */
  openTimeout?: number | undefined;
  /**
   * How many bytes a channel holds before it says to wait: a Node `Channel`'s readable and writable
   * high-water mark, a `LightChannel`'s and a `WebChannel`'s write queue (a `WebChannel`'s readable holds
   * nothing the page has not asked for: its window credits only what was read).
   * Range: 1 to 2^30.
   * @defaultValue 65,536 (64 KiB)
   */
  channelHighWaterMark?: number | undefined;
  /**
   * How many channels the peer may open and then reset in a burst. Each reset the peer sends for a channel it
   * opened takes one of these (a quarter of one for a channel still waiting in the accept queue, for which the
   * application started no work); they come back at `peerResetRate` a second, up to this many. When none is left,
   * the session fails with a protocol error (Go Away, `ERR_MUX_PROTOCOL`): a peer that opens channels and
   * resets them at once makes this side start work for each (the "rapid reset" of HTTP/2, CVE-2023-44487).
   * Default 1,000, then 1,000 a second: nghttp2 and `node:http2` allow 33 a second to HTTP/2 clients, but a
   * multiplexer's channels are often cancelled RPCs (the reliability suite's mixed traffic reset 113 a second
   * on its in-memory session, on two shared cores), and a false alarm ends every channel of the session. An
   * unbounded peer opened and reset about 50,000 a second (loopback, one process). Only yamux has resets
   * (the multiplex format's RST is its close).
   * Range: 1 to 2^32−1.
   * @defaultValue 1,000
   */
  peerResetBurst?: number | undefined;
  /**
   * Resets allowed a second once the `peerResetBurst` is spent.
   * Range: 0 to 2^32−1.
   * @defaultValue 1,000
   */
  peerResetRate?: number | undefined;
  /**
   * Milliseconds a session may spend reading at a stretch (decoding what arrived and what that sets off, an
   * application's listeners included) before the rest waits for the event loop's other work: one read of a
   * socket brings up to 64 KiB, thousands of frames that each open a channel, and Node reads a busy socket up
   * to 32 times in a row. Once the slice is spent the session stops reading its transport and goes on with what
   * it holds after the loop's pending work (timers, other sockets, other sessions). The same share paces a
   * failed session's news to its channels: beyond 64 of them they hear of it a batch a turn, and the session
   * reports its end after the last. 0: no limit (a read is decoded whole, at once; every channel told at once).
   * Range: 0 to 2^31−1.
   * @defaultValue 8
   */
  readTimeSlice?: number | undefined;
  /**
   * Receives the session's log records (lifecycle, Go Away, keep-alive and close timeouts, protocol errors,
   * refusals, resets, window stalls), each with a level. Off (`null`) by default, and then it costs one check
   * per event. On Node, `NODE_DEBUG=muxwire` and the `muxwire:log` diagnostics channel also receive them
   * (see docs/observability.md).
   * @defaultValue `null`
   */
  logger?: Logger | null | undefined;
}

/**
 * The options after defaults are applied: each one present, none undefined. (Not `Required<SessionOptions>`:
 * under `exactOptionalPropertyTypes` that keeps the `| undefined` the options declare.)
 */
export type ResolvedOptions = { [K in keyof SessionOptions]-?: Exclude<SessionOptions[K], undefined> };

const MAX_U32 = 0xffff_ffff;
const MAX_I32 = 0x7fff_ffff;

type NumberOption = Exclude<keyof ResolvedOptions, 'protocol' | 'memoryBudget' | 'logger'>;

/** The defaults, chosen for real networks: large windows that tune themselves, bounded memory, bounded waits. */
export const DEFAULT_OPTIONS: Readonly<ResolvedOptions> = Object.freeze({
  protocol: 'yamux',
  maxStreams: 65_536,
  maxInboundStreams: MAX_I32,
  maxOutboundStreams: MAX_I32,
  acceptBacklog: 256,
  ackBacklog: 256,
  initialWindow: SPEC_INITIAL_WINDOW,
  maxWindow: 64 * 1024 * 1024,
  maxSessionBuffered: 128 * 1024 * 1024,
  memoryBudget: sharedMemoryBudget,
  maxFrameSize: 64 * 1024,
  keepAliveInterval: 30_000,
  keepAliveTimeout: 10_000,
  closeTimeout: 30_000,
  openTimeout: 75_000,
  channelHighWaterMark: 64 * 1024,
  peerResetBurst: 1000,
  peerResetRate: 1000,
  readTimeSlice: 8,
  logger: null as Logger | null,
});

/** Each numeric option's least and greatest value. */
const RANGES: Record<NumberOption, readonly [number, number]> = {
  maxStreams: [1, MAX_I32],
  maxInboundStreams: [0, MAX_I32],
  maxOutboundStreams: [0, MAX_I32],
  acceptBacklog: [1, 1_000_000],
  ackBacklog: [1, 1_000_000],
  initialWindow: [SPEC_INITIAL_WINDOW, MAX_U32],
  maxWindow: [SPEC_INITIAL_WINDOW, MAX_U32],
  maxSessionBuffered: [SPEC_INITIAL_WINDOW, 2 ** 53 - 1], // Number.MAX_SAFE_INTEGER, written so that a bundle holds no long name
  maxFrameSize: [1024, 16 * 1024 * 1024],
  keepAliveInterval: [0, MAX_I32],
  keepAliveTimeout: [1, MAX_I32],
  closeTimeout: [0, MAX_I32],
  openTimeout: [0, MAX_I32],
  channelHighWaterMark: [1, 1 << 30],
  peerResetBurst: [1, MAX_U32],
  peerResetRate: [0, MAX_U32],
  readTimeSlice: [0, MAX_I32],
};

/**
 * Checks one numeric option (also used for per-call overrides such as `dial({ openTimeout })`): a value of
 * the wrong type throws `TypeError`, one out of range `RangeError`, both naming the option.
 * @hidden (internal: how sessions check a numeric option)
 */
export function checkNumberOption(key: NumberOption, value: unknown): number {
  const [min, max] = RANGES[key];
  if (typeof value !== 'number' || Number.isNaN(value)) {
    throw new TypeError(`muxwire: option ${key} must be a number, got ${value === value ? typeof value : 'NaN'}`);
  }
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`muxwire: option ${key} must be an integer from ${min} to ${max}, got ${value}`);
  }
  return value;
}

/** Checks one option that is given (not undefined) and returns it. */
function checkOption(key: keyof ResolvedOptions, value: unknown): unknown {
  if (key === 'protocol') {
    if (value !== 'yamux' && value !== 'multiplex') {
      throw new TypeError(`muxwire: option protocol must be 'yamux' or 'multiplex', got ${String(value)}`);
    }
  } else if (key === 'memoryBudget') {
    if (value !== null && !(value instanceof MemoryBudget)) {
      throw new TypeError(
        'muxwire: option memoryBudget must be a MemoryBudget (made by this copy of muxwire: each installed copy ' +
          'has its own) or null',
      );
    }
  } else if (key === 'logger') {
    if (value !== null && typeof value !== 'function') {
      throw new TypeError('muxwire: option logger must be a function or null');
    }
  } else {
    return checkNumberOption(key, value);
  }
  return value;
}

/**
 * Applies defaults and checks every option. A value of the wrong type throws `TypeError`, one out of range
 * `RangeError`; both name the option.
 */
export function resolveOptions(options: SessionOptions | undefined): ResolvedOptions {
  if (options !== undefined && (typeof options !== 'object' || options === null)) {
    throw new TypeError('muxwire: options must be an object');
  }
  const resolved: Record<string, unknown> = { ...DEFAULT_OPTIONS };
  if (options !== undefined) {
    for (const key of Object.keys(options)) {
      if (!Object.hasOwn(DEFAULT_OPTIONS, key)) throw new TypeError(`muxwire: unknown option ${key}`);
    }
    for (const key of Object.keys(DEFAULT_OPTIONS) as (keyof ResolvedOptions)[]) {
      const value = options[key];
      if (value !== undefined) resolved[key] = checkOption(key, value);
    }
  }
  const { maxWindow, initialWindow } = resolved as ResolvedOptions;
  if (maxWindow < initialWindow) {
    throw new RangeError(`muxwire: option maxWindow (${maxWindow}) must be at least initialWindow (${initialWindow})`);
  }
  return resolved as ResolvedOptions;
}
