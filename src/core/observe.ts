/**
 * Observability: the optional logger hook (`logger` option), the session's counters and the snapshots that
 * `session.stats()` and `channel.stats()` return.
 *
 * Cost when nobody looks: the counters are plain numbers on one object per session, bumped where the event
 * already happens; a log call passes a code and its fields positionally (numbers, an error that exists
 * anyway), so with no logger it allocates nothing, and `log()` returns after its one check. The session
 * builds no record and no text: {@link logRecords}, given to the session by its adapter, makes records of
 * the codes, and {@link formatLogRecord} makes a line of a record, for those who want one; a browser bundle
 * that uses neither leaves both out. Per channel nothing is added but one number (`ChannelState.sent`): the
 * rest of a channel's snapshot is read from what its state already holds.
 * @module
 */
import type { ChannelState, ChannelStateName } from './channel-state.js';
import { GoAwayCode, TimeoutError } from './errors.js';
import {
  LOG_GOAWAY_RECEIVED,
  LOG_GOAWAY_SENT,
  LOG_PROTOCOL_ERROR,
  LOG_REFUSED_IN,
  LOG_REFUSED_OUT,
  LOG_RESET_IN,
  LOG_RESET_OUT,
  LOG_SESSION_CLOSE,
  LOG_SESSION_OPEN,
  LOG_WINDOW_STALL,
} from './log-codes.js';

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
 * - `channel-reset` (debug; warn for an open timeout): a channel was reset, by the peer (`in`) or by this side
 *   (`out`); `error` is why.
 * - `window-stall` (debug): a channel has data to send and the peer's window is spent.
 */
export type LogEvent =
  | 'session-open'
  | 'session-close'
  | 'goaway-sent'
  | 'goaway-received'
  | 'keepalive-timeout'
  | 'close-timeout'
  | 'protocol-error'
  | 'channel-refused'
  | 'channel-reset'
  | 'window-stall';

/** Why this side refused a channel the peer opened. */
export type RefusalReason = 'closing' | 'max-streams' | 'max-inbound-streams' | 'accept-backlog';

/**
 * One log record, handed to the `logger` option: structured, no text built inside the session (so the core
 * carries no messages; {@link formatLogRecord} makes a line of it).
 */
export interface LogRecord {
  /** How much it matters (see {@link LOG_LEVELS}). */
  level: LogLevel;
  /** What happened (see {@link LogEvent}). */
  event: LogEvent;
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
  /** The error behind the event (the session's, or the channel's): its message says what happened. */
  error?: Error;
  /** For `channel-refused` by this side: why. */
  reason?: RefusalReason;
}

/**
 * Receives the session's log records. Off by default; called synchronously from inside the session, so it
 * should be quick (queue or print, not wait). An exception it throws is caught and ignored.
 */
export type Logger = (record: LogRecord) => void;

/** Ordering of levels, for loggers that filter: `LOG_LEVELS.indexOf(record.level) >= LOG_LEVELS.indexOf('info')`. */
export const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error']; // not frozen: a call would keep it in every bundle

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
  /** Channels the peer opened that are open now (what `maxInboundStreams` bounds). */
  inboundOpen: number;
  /** Channels this side dialled that are open now (what `maxOutboundStreams` bounds). */
  outboundOpen: number;
  /** Channels reset by the peer (after it had accepted them, or that it had opened). */
  resetsIn: number;
  /** Channels reset by this side (an RST sent; refusals not included). */
  resetsOut: number;
  /** This side's dials the peer refused (`ChannelRefusedError`). */
  refusalsIn: number;
  /** The peer's channels this side refused (accept queue full, `maxStreams`, `maxInboundStreams`, closing). */
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
  /** Bytes received and not read yet (0 once the channel is destroyed, which drops them). */
  bufferedBytes: number;
  /** This side's receive window. */
  receiveWindow: number;
  /** The peer's window: bytes this side may still send (Infinity on the multiplex format, which has none). */
  sendWindow: number;
  /** Data waits for the peer's window right now. */
  stalled: boolean;
}

/**
 * Where a session's reports go, made by a {@link LogRecordMaker}: the code (one per kind of report: which
 * event, and which way), and the fields that apply: the channel id, the error behind it, and `detail`, the Go
 * Away code or why this side refused a channel.
 */
export type LogSink = (code: number, channel?: number, error?: Error, detail?: number | RefusalReason) => void;

/**
 * Makes the sink that turns a session's reports into {@link LogRecord}s for its `logger`: {@link logRecords}.
 * A session with a logger needs it; the Node sessions are always given it, a `WebSession` when the page
 * passes it (as the `logRecords` option), so that a page that does not log leaves it out of its bundle.
 */
export type LogRecordMaker = (logger: Logger, session: object, role: 'client' | 'server') => LogSink;

/**
 * The session's counters and its log sink, shared by the parts that count or report. Its own fields are the
 * counters alone (the sink is private), so `stats()` copies them with a spread. @internal
 */
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

  readonly #sink: LogSink | null;

  constructor(sink: LogSink | null) {
    this.#sink = sink;
  }

  /**
   * Reports to the logger, if there is one. Positional, so that a call with no logger allocates nothing: the
   * one check is here.
   */
  log(code: number, channel?: number, error?: Error, detail?: number | RefusalReason): void {
    if (this.#sink !== null) this.#sink(code, channel, error, detail);
  }

  /** A channel's data now waits for the peer's window. */
  onWindowStall(channel: ChannelState): void {
    this.windowStalls++;
    this.log(LOG_WINDOW_STALL, channel.id);
  }
}

/** The event of each `LOG_*` code. */
const EVENTS: readonly LogEvent[] = [
  'session-open',
  'session-close',
  'goaway-sent',
  'goaway-received',
  'keepalive-timeout',
  'close-timeout',
  'protocol-error',
  'channel-refused',
  'channel-refused',
  'channel-reset',
  'channel-reset',
  'window-stall',
];

/** The level of a report (the table in docs/observability.md). */
function levelOf(code: number, error: Error | undefined, detail: number | RefusalReason | undefined): LogLevel {
  switch (code) {
    case LOG_SESSION_OPEN:
    case LOG_WINDOW_STALL:
      return 'debug';
    case LOG_SESSION_CLOSE:
      return error === undefined ? 'info' : 'warn';
    case LOG_GOAWAY_SENT: // code 0 from close() is routine; an error code, or a Go Away sent failing, is not
      return error === undefined && detail === GoAwayCode.normal ? 'info' : 'warn';
    case LOG_GOAWAY_RECEIVED:
      return detail === GoAwayCode.normal ? 'info' : 'warn';
    case LOG_PROTOCOL_ERROR:
      return 'error';
    case LOG_REFUSED_IN:
      return 'info';
    case LOG_REFUSED_OUT: // refusing while closing is routine; a limit reached is worth a warning
      return detail === 'closing' ? 'info' : 'warn';
    case LOG_RESET_IN:
    case LOG_RESET_OUT: // an open timeout says the peer is stuck or overloaded, unlike an ordinary reset
      return error instanceof TimeoutError ? 'warn' : 'debug';
    default: // keep-alive and close timeouts
      return 'warn';
  }
}

/**
 * Turns a session's reports into {@link LogRecord}s for `logger` (see {@link LogRecordMaker}). In muxwire/web,
 * pass it as the `logRecords` option beside `logger`. A logger that throws is ignored: it must not break the
 * session it observes.
 */
export const logRecords: LogRecordMaker = (logger, session, role) => (code, channel, error, detail) => {
  const record: LogRecord = { level: levelOf(code, error, detail), event: EVENTS[code]!, role, session };
  if (channel !== undefined) record.channel = channel;
  if (code === LOG_GOAWAY_SENT || code === LOG_REFUSED_OUT || code === LOG_RESET_OUT) record.direction = 'out';
  else if (code === LOG_GOAWAY_RECEIVED || code === LOG_REFUSED_IN || code === LOG_RESET_IN) record.direction = 'in';
  if (error !== undefined) record.error = error;
  if (typeof detail === 'number') record.code = detail;
  else if (detail !== undefined) record.reason = detail;
  try {
    logger(record);
  } catch {
    // A logger that throws must not break the session it observes.
  }
};

const REFUSAL_REASONS: Record<RefusalReason, string> = {
  closing: 'this session is closing or sent Go Away',
  'max-streams': 'maxStreams channels are open',
  'max-inbound-streams': 'maxInboundStreams channels the peer opened are open',
  'accept-backlog': 'the accept queue is full (acceptBacklog): the application does not accept fast enough',
};

/**
 * A log record as one line for people, e.g. `server warn channel-refused channel=5: refused the peer's
 * channel: the accept queue is full (acceptBacklog)...`. Not used by the session itself (so it stays out of
 * bundles that do not call it).
 */
export function formatLogRecord(record: LogRecord): string {
  const { event, error } = record;
  let text: string;
  switch (event) {
    case 'session-open':
      text = 'session opened';
      break;
    case 'session-close':
      text = error === undefined ? 'session closed cleanly' : `session failed: ${error.message}`;
      break;
    case 'goaway-sent':
      text = `Go Away (code ${record.code}) sent${error === undefined ? '' : `: ${error.message}`}`;
      break;
    case 'goaway-received':
      text = `the peer sent Go Away (code ${record.code})`;
      break;
    case 'window-stall':
      text = "data waits for the peer's window";
      break;
    case 'channel-refused':
      text =
        record.direction === 'in'
          ? `the peer refused this side's channel`
          : `refused the peer's channel: ${
              record.reason === undefined ? (error?.message ?? 'refused') : REFUSAL_REASONS[record.reason]
            }`;
      break;
    case 'channel-reset':
      text = `${record.direction === 'in' ? 'reset by the peer' : 'reset by this side'}${
        error === undefined ? '' : `: ${error.message}`
      }`;
      break;
    default:
      text = error?.message ?? event;
  }
  const channel = record.channel === undefined ? '' : ` channel=${record.channel}`;
  return `${record.role} ${record.level} ${event}${channel}: ${text}`;
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
