/**
 * Observability on Node: the core's log records (the `logger` option) also go to `NODE_DEBUG=muxwire`
 * (`util.debuglog`, lines on stderr, for people) and to the `muxwire:log` diagnostics channel (the records
 * themselves, for tools); every Node session is announced on `muxwire:session`. Both are Node built-ins, so
 * no dependency; why these two: docs/observability.md.
 *
 * Both are decided when a session is made: a session gets a logger only if `NODE_DEBUG` names muxwire or
 * `muxwire:log` has a subscriber then (or the application passed its own), so a session nobody watches pays
 * one check per event, as in the core.
 * @module
 */
import diagnostics from 'node:diagnostics_channel';
import { debuglog } from 'node:util';
import { type LogRecord, type Logger, formatLogRecord } from '../core/observe.js';
import type { SessionOptions } from '../core/options.js';

/** Every log record of the Node sessions made while it has subscribers (the message is the `LogRecord`). */
export const LOG_CHANNEL = 'muxwire:log';
/** Every Node session as it is made (the message is `{ session }`): call `session.stats()` when you like. */
export const SESSION_CHANNEL = 'muxwire:session';

const logChannel = diagnostics.channel(LOG_CHANNEL);
const sessionChannel = diagnostics.channel(SESSION_CHANNEL);
/** `NODE_DEBUG=muxwire` (or a pattern matching it, such as `mux*`), read by Node on first use. */
const debug = debuglog('muxwire');

/** The number each session's lines carry, so that many sessions' lines can be told apart (1 for the first). */
const sessionNumbers = new WeakMap<object, number>();
let sessionsNumbered = 0;

function sessionNumber(session: object): number {
  let number = sessionNumbers.get(session);
  if (number === undefined) sessionNumbers.set(session, (number = ++sessionsNumbered));
  return number;
}

function toNode(record: LogRecord): void {
  if (debug.enabled) debug('session %d %s', sessionNumber(record.session), formatLogRecord(record));
  if (logChannel.hasSubscribers) logChannel.publish(record);
}

/**
 * The options a Node session is made with: the application's, with a logger that also feeds `NODE_DEBUG` and
 * `muxwire:log` when either is watched now. Unchanged (the same object) otherwise.
 */
export function withNodeLogging(options: SessionOptions | undefined): SessionOptions | undefined {
  if (!debug.enabled && !logChannel.hasSubscribers) return options;
  const own = options?.logger;
  if (own !== undefined && own !== null && typeof own !== 'function') return options; // resolveOptions says why
  const logger: Logger = own
    ? (record) => {
        try {
          own(record);
        } finally {
          toNode(record);
        }
      }
    : toNode;
  return { ...options, logger };
}

/** Announces a new session on `muxwire:session`. */
export function announceSession(session: object): void {
  if (sessionChannel.hasSubscribers) sessionChannel.publish({ session });
}
