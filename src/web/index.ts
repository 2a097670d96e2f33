/**
 * muxwire for browsers, workers, Deno, Bun and Node alike (no Node imports): sessions over a WebSocket or a
 * Web Streams pair, with channels as Web Streams.
 *
 * ```ts
 * import { connectWebSocket } from 'muxwire/web';
 * const session = await connectWebSocket('ws://127.0.0.1:7000/mux');
 * const channel = session.dial();
 * ```
 * @module
 */
export {
  WebSession,
  connectWebSocket,
  type WebSessionOptions,
  type ConnectWebSocketOptions,
  type WebSocketConstructor,
} from './session.js';
export { multiplexCodec } from '../core/codecs/multiplex.js';
export { logRecords, formatLogRecord, LOG_LEVELS } from '../core/observe.js';
export type { WireCodec } from '../core/codec.js';
export { WebChannel } from './channel.js';
export {
  webSocketTransport,
  WebSocketClosedError,
  type WebSocketLike,
  type SendableBytes,
  type WebSocketTransportOptions,
} from './websocket-transport.js';
export { dataChannelTransport, DATA_CHANNEL_MESSAGE_SIZE, type DataChannelLike } from './data-channel-transport.js';
export { streamTransport, type StreamPair } from './stream-transport.js';
export {
  MuxError,
  ProtocolError,
  SessionClosedError,
  GoAwayError,
  ChannelResetError,
  ChannelRefusedError,
  StreamLimitError,
  TimeoutError,
  TransportClosedError,
  GoAwayCode,
  type ChannelResetCode,
  type TimeoutCode,
  type AnyMuxError,
  type BaseMuxErrorCode,
  type MuxErrorCode,
  isMuxError,
} from '../core/errors.js';
export { DEFAULT_OPTIONS, type SessionOptions, type ResolvedOptions } from '../core/options.js';
export { MemoryBudget } from '../core/budget.js';
export type {
  Role,
  SessionEvents,
  SessionStatus,
  AcceptOptions,
  DialOptions,
  CloseOptions,
  PingOptions,
} from '../core/session.js';
export type { ChannelStateName } from '../core/channel-state.js';
export type { Transport, TransportEvents } from '../core/transport.js';
export type {
  LogLevel,
  LogEvent,
  LogRecord,
  Logger,
  LogRecordMaker,
  LogSink,
  RefusalReason,
  SessionStats,
  ChannelStats,
} from '../core/observe.js';
