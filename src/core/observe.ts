/**
 * Observability: the optional logger hook (`logger` option), the session's counters and the snapshots that
 * `session.stats()` and `channel.stats()` return.
 *
 * Cost when nobody looks: the counters are plain numbers on one object per session, bumped where the event
 * already happens; a log site is `if (telemetry.logger !== null)` and builds its message and record only
 * inside that branch. Per channel nothing is added but one number (`ChannelState.sent`): the rest of a
 * channel's snapshot is read from what its state already holds.
 * @module
 */
import type { ChannelState, ChannelStateName } from './channel-state.js';

/** How much a log record matters: `debug` (per-channel detail), `info`, `warn`, `error` (protocol errors). */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/**
 * What a log record reports:
 * - `session-open` (debug): the session started.
 * - `session-close` (info when clean, warn otherwise): the session ended; `error` is why.
 * - `goaway-sent` (info; warn for an error code), `goaway-received` (info; warn for an error code): `code`.
 * - `keepalive-timeout` (warn): the peer answered no ping and sent nothing within `keepAliveTimeout`.
 * - `close-timeout` (warn): `close()` gave up on channels still open.
 * - `protocol-error` (error): the peer broke the protocol; the session fails.
 * - `channel-refused` (info; warn when this side refuses because a limit is reached): `channel`, and
 *   `direction` (`in`: the peer refused this side's dial; `out`: this side refused the peer's SYN).
 * - `channel-reset` (debug): a channel was reset, by the peer (`in`) or by this side (`out`); `error` is why.
 * - `window-stall` (debug): a channel has data to send and the peer's window is spent.
 */
export type LogEvent =
  | 'session-open' | 'session-close' | 'goaway-sent' | 'goaway-received' | 'keepalive-timeout' | 'close-timeout'
  | 'protocol-error' | 'channel-refused' | 'channel-reset' | 'window-stall';

/** One log record, handed to the `logger` option. */
export interface LogRecord {
  level: LogLevel;
  event: LogEvent;
  /** A sentence for people: what happened, with the figures. */
  message: string;
  /** The session's role (`client` or `server`): which end of the connection reports. */
  role: 'client' | 'server';
  /** The session that reports (a `MuxSession`: `Session`, `LightSession`, `WebSession`...). */
  session: object;
  /** The channel id, for channel events. */
  channel?: number;
  /** `in`: the peer did it (refused, reset, sent Go Away); `out`: this side did. */
  direction?: 'in' | 'out';
  /** The Go Away code, for `goaway-*` events. */
  code?: number;
  /** The error behind the event (the session's, or the channel's). */
  error?: Error;
}

/**
 * Receives the session's log records. Off by default; called synchronously from inside the session, so it
 * should be quick (queue or print, not wait). An exception it throws is caught and ignored.
 */
export type Logger = (record: LogRecord) => void;

/** Ordering of levels, for loggers that filter: `LOG_LEVELS.indexOf(record.level) >= LOG_LEVELS.indexOf('info')`. */
export const LOG_LEVELS: readonly LogLevel[] = Object.freeze(['debug', 'info', 'warn', 'error'] as LogLevel[]);

/**
 * A session's counters since it started (`session.stats()`). Bytes and frames are on the wire: `bytesOut`
 * is every byte handed to the transport, headers included; `dataBytesOut` the payload of Data frames alone.
 */
export interface SessionStats {
  /** `open`, `closing` or `closed`. */
  state: 'open' | 'closing' | 'closed';
  /** Bytes read from the transport. */
  bytesIn: number;
  /** Bytes written to the transport (frame headers and payloads). */
  bytesOut: number;
  /** Frames received (every type: Data, Window Update, Ping, Go Away). */
  framesIn: number;
  /** Frames sent (every type). */
  framesOut: number;
  /** Payload bytes of the Data frames received. */
  dataBytesIn: number;
  /** Payload bytes of the Data frames sent. */
  dataBytesOut: number;
  /** Channels this side dialled. */
  outboundChannels: number;
  /** Channels the peer opened that entered this session (not those refused at once: see `refusalsOut`). */
  inboundChannels: number;
  /** Channels open now. */
  channelsOpen: number;
  /** Channels reset by the peer (after it had accepted them, or that it had opened). */
  resetsIn: number;
  /** Channels reset by this side (an RST sent; refusals not included). */
  resetsOut: number;
  /** This side's dials the peer refused (`ChannelRefusedError`). */
  refusalsIn: number;
  /** The peer's channels this side refused (accept queue full, `maxStreams`, closing). */
  refusalsOut: number;
  /** Times a channel had data to send and had spent the peer's window (its writes wait for a Window Update). */
  windowStalls: number;
  /** Bytes received and not yet read by the application. */
  bufferedBytes: number;
  /** The last round-trip time measured (ms), or undefined before the first. */
  rtt: number | undefined;
}

/** A channel's figures (`channel.stats()`, and the argument of the session's `channelOpen`/`channelClose`). */
export interface ChannelStats {
  /** The channel id on the wire. */
  id: number;
  /** Dialled by this side. */
  outbound: boolean;
  /** The protocol state (`reset` when it was reset, either way, or failed with its session). */
  state: ChannelStateName;
  /** Payload bytes received (discarded ones after `closeRead()` included). */
  bytesIn: number;
  /** Payload bytes sent (packed into frames for the transport). */
  bytesOut: number;
  /** Bytes written by the application and not sent yet. */
  queuedBytes: number;
  /** Bytes received and not read yet. */
  bufferedBytes: number;
  /** This side's receive window. */
  receiveWindow: number;
  /** The peer's window: bytes this side may still send (Infinity on the multiplex format, which has none). */
  sendWindow: number;
  /** Data waits for the peer's window right now. */
  stalled: boolean;
}

/** The session's counters and its logger, shared by the parts that count or report. @internal */
export class Telemetry {
  bytesIn = 0;
  bytesOut = 0;
  framesIn = 0;
  framesOut = 0;
  dataBytesIn = 0;
  dataBytesOut = 0;
  outboundChannels = 0;
  inboundChannels = 0;
  resetsIn = 0;
  resetsOut = 0;
  refusalsIn = 0;
  refusalsOut = 0;
  windowStalls = 0;

  constructor(
    /** The logger, or null: every log site checks this first. */
    readonly logger: Logger | null,
    private readonly session: object,
    private readonly role: 'client' | 'server',
  ) {}

  /** Hands a record to the logger; call only after checking `logger !== null`. */
  log(level: LogLevel, event: LogEvent, message: string, extra?: Pick<LogRecord, 'channel' | 'direction' | 'code' | 'error'>): void {
    const logger = this.logger;
    if (logger === null) return;
    const record: LogRecord = { level, event, message, role: this.role, session: this.session, ...extra };
    try {
      logger(record);
    } catch {
      // A logger that throws must not break the session it observes.
    }
  }

  /** A channel's data now waits for the peer's window. */
  onWindowStall(channel: ChannelState): void {
    this.windowStalls++;
    if (this.logger !== null) {
      this.log('debug', 'window-stall', `channel ${channel.id}: ${channel.queuedBytes} bytes wait for the peer's window`,
        { channel: channel.id });
    }
  }
}

/** A snapshot of one channel's figures, read from its state. */
export function channelStats(channel: ChannelState): ChannelStats {
  const queuedBytes = channel.queuedBytes;
  const sendWindow = channel.sendWindow;
  return {
    id: channel.id,
    outbound: channel.outbound,
    state: channel.state,
    bytesIn: channel.delivered,
    bytesOut: channel.sent,
    queuedBytes,
    bufferedBytes: channel.endpoint.bufferedBytes,
    receiveWindow: channel.rx.size,
    sendWindow,
    stalled: queuedBytes > 0 && sendWindow <= 0 && channel.live,
  };
}
