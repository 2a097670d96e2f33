/**
 * The options of `muxwire()` for libp2p: the names `@chainsafe/libp2p-yamux` takes, mapped to muxwire's
 * session options, and checked once, when the factory is made.
 * @module
 */
import {
  type AbortOptions,
  InvalidParametersError,
  type StreamMuxerOptions,
  type StreamOptions,
} from '@libp2p/interface';
import { checkSignal } from '../core/abortable.js';
import { shown } from '../core/errors.js';
import { type ResolvedOptions, type SessionOptions, SPEC_INITIAL_WINDOW, resolveOptions } from '../core/options.js';

/** Per-stream options: libp2p's own, plus the yamux window sizes. */
export interface MuxwireStreamOptions extends StreamOptions {
  /** Receive window each stream starts with, in bytes (at least 262,144, the spec's). Default 256 KiB. */
  initialStreamWindowSize?: number | undefined;
  /** Largest receive window auto-tuning may grow a stream to, in bytes. Default 16 MiB, as libp2p's yamux. */
  maxStreamWindowSize?: number | undefined;
}

/**
 * What `muxwire()` takes: the options of `yamux()` from `@chainsafe/libp2p-yamux` (same names, same
 * defaults), plus `session` for muxwire's own session options.
 */
export interface MuxwireInit extends StreamMuxerOptions<MuxwireStreamOptions> {
  /** Send keep-alive pings (default true). Unlike libp2p's yamux, an unanswered ping ends the connection. */
  enableKeepAlive?: boolean | undefined;
  /** Milliseconds between keep-alive pings (default 30,000). */
  keepAliveInterval?: number | undefined;
  /**
   * muxwire's session options beyond the names above (`keepAliveTimeout`, `maxSessionBuffered`,
   * `memoryBudget`, `closeTimeout`, `openTimeout`, `ackBacklog`, `channelHighWaterMark`...). Where both say
   * something, the yamux-named option wins (`maxInboundStreams` and `maxOutboundStreams` given here count as
   * the yamux-named ones when those are not given: the muxer applies them, with libp2p's errors).
   */
  session?: SessionOptions | undefined;
}

/** The checked options: the session's, and what the muxer and its streams apply themselves. */
export interface ResolvedMuxwireInit {
  session: ResolvedOptions;
  maxInboundStreams: number;
  maxOutboundStreams: number;
  maxEarlyStreams: number;
  /** libp2p's per-stream options (buffer limits, inactivity timeout) passed to every stream. */
  streamOptions: StreamOptions;
}

/** libp2p's yamux defaults that muxwire's own defaults differ from. */
const LIBP2P_DEFAULTS = {
  maxInboundStreams: 1_000,
  maxOutboundStreams: 1_000,
  maxEarlyStreams: 10,
  maxStreamWindowSize: 16 * 1024 * 1024,
  keepAliveInterval: 30_000,
};

/** The names `muxwire()` takes; any other is a mistake (a misspelling, or a name that goes elsewhere). */
const INIT_KEYS = new Set([
  'streamOptions',
  'maxEarlyStreams',
  'maxMessageSize',
  'maxInboundStreams',
  'maxOutboundStreams',
  'enableKeepAlive',
  'keepAliveInterval',
  'session',
]);

/** Where a name given at the top level belongs, if it belongs anywhere. */
function misplaced(key: string): string {
  if (key === 'initialStreamWindowSize' || key === 'maxStreamWindowSize') return ` (it goes in streamOptions)`;
  if (key === 'protocol' || key === 'logger') return ` (muxwire's session options go in session)`;
  return '';
}

function count(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
    throw new InvalidParametersError(`muxwire: ${name} must be an integer >= 0, got ${String(value)}`);
  }
  return value;
}

/** A stream count: the yamux-named one, else the one given in `session` (named so in an error), else libp2p's. */
function streamCount(
  name: 'maxInboundStreams' | 'maxOutboundStreams',
  value: number | undefined,
  inSession: number | undefined,
): number {
  if (value === undefined && inSession !== undefined) return count(`session.${name}`, inSession, 0);
  return count(name, value, LIBP2P_DEFAULTS[name]);
}

/** A libp2p stream limit (`maxReadBufferLength`...): a number from 0 (Infinity: none), or not given. */
function limit(name: string, value: unknown): void {
  if (value !== undefined && !(typeof value === 'number' && value >= 0)) {
    throw new InvalidParametersError(`muxwire: streamOptions.${name} must be a number >= 0, got ${shown(value)}`);
  }
}

/**
 * Applies defaults and checks `init`. Anything invalid throws libp2p's `InvalidParametersError`, naming the
 * option (for a session option, muxwire's own `TypeError` or `RangeError` is its `cause`).
 */
export function resolveInit(init: MuxwireInit = {}): ResolvedMuxwireInit {
  if (typeof init !== 'object' || init === null) throw new InvalidParametersError('muxwire: init must be an object');
  for (const key of Object.keys(init)) {
    if (!INIT_KEYS.has(key)) throw new InvalidParametersError(`muxwire: unknown option ${key}${misplaced(key)}`);
  }
  const maxEarlyStreams = count('maxEarlyStreams', init.maxEarlyStreams, LIBP2P_DEFAULTS.maxEarlyStreams);
  const { initialStreamWindowSize, maxStreamWindowSize, ...streamOptions } = init.streamOptions ?? {};
  for (const name of ['maxReadBufferLength', 'maxWriteBufferLength', 'inactivityTimeout'] as const) {
    limit(name, streamOptions[name]);
  }
  const { enableKeepAlive, keepAliveInterval } = init;
  if (enableKeepAlive !== undefined && typeof enableKeepAlive !== 'boolean') {
    throw new InvalidParametersError(`muxwire: enableKeepAlive must be true or false, got ${String(enableKeepAlive)}`);
  }
  // As yamux: an interval of 0 is a mistake here (`enableKeepAlive: false` turns keep-alive off).
  if (keepAliveInterval === 0 && enableKeepAlive !== false) {
    throw new InvalidParametersError(
      'muxwire: keepAliveInterval must be above 0 (enableKeepAlive: false turns it off)',
    );
  }
  if (init.session !== undefined && (typeof init.session !== 'object' || init.session === null)) {
    throw new InvalidParametersError(
      `muxwire: session must be an object of session options, got ${shown(init.session)}`,
    );
  }
  // The stream counts are the muxer's to apply (with libp2p's errors); one given in `session` counts as the
  // yamux-named one where that is not given.
  const {
    maxInboundStreams: inboundInSession,
    maxOutboundStreams: outboundInSession,
    ...sessionOptions
  } = init.session ?? {};
  const maxInboundStreams = streamCount('maxInboundStreams', init.maxInboundStreams, inboundInSession);
  const maxOutboundStreams = streamCount('maxOutboundStreams', init.maxOutboundStreams, outboundInSession);
  const session: SessionOptions = sessionOptions;
  // The yamux names win: `enableKeepAlive: true` turns on keep-alive a `session.keepAliveInterval` of 0 had off.
  if (enableKeepAlive === false) session.keepAliveInterval = 0;
  else if (init.keepAliveInterval !== undefined) session.keepAliveInterval = init.keepAliveInterval;
  else if (session.keepAliveInterval === undefined || (enableKeepAlive === true && session.keepAliveInterval === 0)) {
    session.keepAliveInterval = LIBP2P_DEFAULTS.keepAliveInterval;
  }
  if (initialStreamWindowSize !== undefined) session.initialWindow = initialStreamWindowSize;
  const initialWindow = session.initialWindow ?? SPEC_INITIAL_WINDOW;
  if (maxStreamWindowSize !== undefined) session.maxWindow = maxStreamWindowSize;
  else session.maxWindow ??= Math.max(LIBP2P_DEFAULTS.maxStreamWindowSize, initialWindow);
  if (init.maxMessageSize !== undefined) session.maxFrameSize = init.maxMessageSize;
  // A libp2p stream's send() says "wait" only when the peer's window is spent (libp2p's yamux) or the
  // connection is saturated: a channel may hold a whole initial window unsent before it says so.
  session.channelHighWaterMark ??= initialWindow;
  // The session's own cap covers both directions; the muxer applies the two libp2p limits itself. The inbound
  // one is the session's too, so that a stream past it is refused at its SYN (the dialler's ChannelRefusedError:
  // safe to retry), not taken and then reset as one the application had.
  session.maxStreams ??= Math.min(0x7fff_ffff, Math.max(1, maxInboundStreams + maxOutboundStreams));
  session.maxInboundStreams = Math.min(0x7fff_ffff, maxInboundStreams);
  // The yamux names given, with the session option each became: an error about one names what the user wrote.
  const given: [string, string][] = [];
  if (initialStreamWindowSize !== undefined) given.push(['streamOptions.initialStreamWindowSize', 'initialWindow']);
  if (maxStreamWindowSize !== undefined) given.push(['streamOptions.maxStreamWindowSize', 'maxWindow']);
  if (init.maxMessageSize !== undefined) given.push(['maxMessageSize', 'maxFrameSize']);
  let resolved: ResolvedOptions;
  try {
    resolved = resolveOptions(session);
  } catch (error) {
    const message = (error as Error).message;
    const named = given.find(([, option]) => message.includes(`option ${option} `));
    const text =
      named === undefined
        ? message
        : `muxwire: ${named[0]} (the session option ${named[1]}): ${message.replace(/^muxwire: /, '')}`;
    throw Object.assign(new InvalidParametersError(text), { cause: error });
  }
  if (resolved.protocol !== 'yamux') throw new InvalidParametersError('muxwire: libp2p streams speak yamux only');
  return { session: resolved, maxInboundStreams, maxOutboundStreams, maxEarlyStreams, streamOptions };
}

/**
 * A libp2p call's signal, checked: libp2p's own code takes a null one for none; one that is no `AbortSignal`
 * (the `AbortController` given in its place) is a `TypeError`, before the call changes anything.
 */
export function signalOf(options: AbortOptions | undefined): AbortSignal | undefined {
  const signal = options?.signal ?? undefined;
  checkSignal(signal);
  return signal;
}
