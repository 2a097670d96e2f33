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

/** Options of a session. Every field is optional; see {@link DEFAULT_OPTIONS} for the defaults. */
export interface SessionOptions {
  /**
   * The wire format: `yamux` (default), or `multiplex` to talk to programs built on the original Go package
   * `alecthomas/multiplex` (no windows, half-close, ping or Go Away: see docs/multiplex-codec.md).
   */
  protocol?: WireProtocol;
  /** Most channels open at once (both directions together). A dial beyond it throws; an inbound SYN beyond it gets RST. */
  maxStreams?: number;
  /** Most inbound channels waiting to be accepted; one more is refused with RST (on the multiplex codec, which cannot refuse, reading pauses until the application takes one). */
  acceptBacklog?: number;
  /** Most dialled channels the peer has not acknowledged yet; further SYNs wait (the libp2p "ACK backlog"). */
  ackBacklog?: number;
  /** Receive window each channel starts with, in bytes (at least the spec's 262,144). */
  initialWindow?: number;
  /** Largest receive window auto-tuning may grow a channel to, in bytes. */
  maxWindow?: number;
  /** Cap on bytes received but not yet read, across all channels of the session. */
  maxSessionBuffered?: number;
  /**
   * The budget window growth is also reserved from, shared with other sessions: by default
   * {@link sharedMemoryBudget} (256 MiB per process); `null` for none (only this session's bound applies).
   */
  memoryBudget?: MemoryBudget | null;
  /** Largest Data frame payload this side sends; writes are cut into fragments of this size and interleaved. */
  maxFrameSize?: number;
  /** Milliseconds between keep-alive pings; 0 turns keep-alive off. */
  keepAliveInterval?: number;
  /** Milliseconds to wait for a ping's answer before the session fails. */
  keepAliveTimeout?: number;
  /**
   * Milliseconds `close()` waits for open channels to end in both directions (this side's `end()` and the
   * peer's) before resetting them; default 30 s. A channel read to its end but not ended here still counts
   * as open. See docs/design.md, "Closing".
   */
  closeTimeout?: number;
  /**
   * Milliseconds a dialled channel may wait for the peer's acknowledgement; then it fails with
   * `ERR_MUX_OPEN_TIMEOUT` and is reset. 0 waits without limit. (Codecs without acknowledgements: no wait.)
   */
  openTimeout?: number;
  /** Readable and writable high-water mark of each channel, in bytes. */
  channelHighWaterMark?: number;
  /**
   * Receives the session's log records (lifecycle, Go Away, keep-alive and close timeouts, protocol errors,
   * refusals, resets, window stalls), each with a level. Off (`null`) by default, and then it costs one check
   * per event. On Node, `NODE_DEBUG=muxwire` and the `muxwire:log` diagnostics channel also receive them
   * (see docs/observability.md).
   */
  logger?: Logger | null;
}

/** The options after defaults are applied. */
export type ResolvedOptions = Required<SessionOptions>;

/** The defaults, chosen for real networks: large windows that tune themselves, bounded memory, bounded waits. */
export const DEFAULT_OPTIONS: Readonly<ResolvedOptions> = Object.freeze({
  protocol: 'yamux',
  maxStreams: 65_536,
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
  logger: null as Logger | null,
});

const MAX_U32 = 0xffff_ffff;

interface Rule {
  min: number;
  max: number;
}

const RULES: Record<Exclude<keyof ResolvedOptions, 'protocol' | 'memoryBudget' | 'logger'>, Rule> = {
  maxStreams: { min: 1, max: 0x7fff_ffff },
  acceptBacklog: { min: 1, max: 1_000_000 },
  ackBacklog: { min: 1, max: 1_000_000 },
  initialWindow: { min: SPEC_INITIAL_WINDOW, max: MAX_U32 },
  maxWindow: { min: SPEC_INITIAL_WINDOW, max: MAX_U32 },
  maxSessionBuffered: { min: SPEC_INITIAL_WINDOW, max: Number.MAX_SAFE_INTEGER },
  maxFrameSize: { min: 1024, max: 16 * 1024 * 1024 },
  keepAliveInterval: { min: 0, max: 0x7fff_ffff },
  keepAliveTimeout: { min: 1, max: 0x7fff_ffff },
  closeTimeout: { min: 0, max: 0x7fff_ffff },
  openTimeout: { min: 0, max: 0x7fff_ffff },
  channelHighWaterMark: { min: 1, max: 1 << 30 },
};

/**
 * Checks one numeric option (also used for per-call overrides such as `dial({ openTimeout })`): a value of
 * the wrong type throws `TypeError`, one out of range `RangeError`, both naming the option.
 */
export function checkNumberOption(key: keyof typeof RULES, value: unknown): number {
  const rule = RULES[key];
  if (typeof value !== 'number' || Number.isNaN(value)) {
    throw new TypeError(`muxwire: option ${key} must be a number, got ${typeof value}`);
  }
  if (!Number.isInteger(value) || value < rule.min || value > rule.max) {
    throw new RangeError(`muxwire: option ${key} must be an integer from ${rule.min} to ${rule.max}, got ${value}`);
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
  const resolved = { ...DEFAULT_OPTIONS } as ResolvedOptions;
  if (options !== undefined) {
    for (const key of Object.keys(options)) {
      if (!(key in DEFAULT_OPTIONS)) throw new TypeError(`muxwire: unknown option ${key}`);
    }
    const protocol = options.protocol;
    if (protocol !== undefined) {
      if (protocol !== 'yamux' && protocol !== 'multiplex') {
        throw new TypeError(`muxwire: option protocol must be 'yamux' or 'multiplex', got ${String(protocol)}`);
      }
      resolved.protocol = protocol;
    }
    const budget = options.memoryBudget;
    if (budget !== undefined) {
      if (budget !== null && !(budget instanceof MemoryBudget)) {
        throw new TypeError('muxwire: option memoryBudget must be a MemoryBudget or null');
      }
      resolved.memoryBudget = budget;
    }
    const logger = options.logger;
    if (logger !== undefined) {
      if (logger !== null && typeof logger !== 'function') {
        throw new TypeError('muxwire: option logger must be a function or null');
      }
      resolved.logger = logger;
    }
  }
  for (const key of Object.keys(RULES) as (keyof typeof RULES)[]) {
    const value = options?.[key];
    if (value !== undefined) resolved[key] = checkNumberOption(key, value);
  }
  if (resolved.maxWindow < resolved.initialWindow) {
    throw new RangeError(
      `muxwire: option maxWindow (${resolved.maxWindow}) must be at least initialWindow (${resolved.initialWindow})`,
    );
  }
  return resolved;
}
