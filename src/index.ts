/**
 * muxwire: many independent, bidirectional byte channels over one transport, on the yamux wire protocol.
 *
 * ```ts
 * import { connect, createServer } from 'muxwire';
 * ```
 * @module
 */
export {
  Session,
  multiplexedClient,
  multiplexedServer,
  lightClient,
  lightServer,
  type ChannelDialOptions,
} from './node/session.js';
export { Channel, type WriteCallback } from './node/channel.js';
export { LightChannel, LightSession, type LightChannelEvents } from './core/light-channel.js';
export { connect, createServer, type ConnectOptions, type ServerOptions } from './node/net.js';
export { duplexTransport } from './node/transport.js';
export { LOG_CHANNEL, SESSION_CHANNEL } from './node/diagnostics.js';
export {
  createWebSocketServer,
  type MuxWebSocketServer,
  type WebSocketServerOptions,
  type WebSocketServerCommonOptions,
  type WebSocketServerOnServer,
  type WebSocketServerOnPort,
} from './node/websocket.js';
export {
  webSocketTransport,
  WebSocketClosedError,
  type WebSocketLike,
  type SendableBytes,
  type WebSocketTransportOptions,
} from './web/websocket-transport.js';
export { dataChannelTransport, DATA_CHANNEL_MESSAGE_SIZE, type DataChannelLike } from './web/data-channel-transport.js';
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
} from './core/errors.js';
export { DEFAULT_OPTIONS, type SessionOptions, type ResolvedOptions } from './core/options.js';
export { MemoryBudget, sharedMemoryBudget } from './core/budget.js';
export {
  MuxSession,
  type Role,
  type SessionEvents,
  type SessionStatus,
  type AcceptOptions,
  type DialOptions,
  type CloseOptions,
  type PingOptions,
} from './core/session.js';
export type { ChannelStateName } from './core/channel-state.js';
export {
  LOG_LEVELS,
  formatLogRecord,
  logRecords,
  type LogRecordMaker,
  type LogSink,
  type LogLevel,
  type RefusalReason,
  type LogEvent,
  type LogRecord,
  type Logger,
  type SessionStats,
  type ChannelStats,
} from './core/observe.js';
export type { Transport, TransportEvents } from './core/transport.js';
