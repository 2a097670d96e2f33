/**
 * The protocol core of muxwire: no Node-only imports, bytes are `Uint8Array`, so it runs in browsers too.
 * Adapters give it a transport ({@link Transport}) and wrap its channels ({@link ChannelEndpoint}).
 * @module
 */
export {
  ChannelRefusedError,
  ChannelResetError,
  GoAwayCode,
  GoAwayError,
  MuxError,
  ProtocolError,
  SessionClosedError,
  StreamLimitError,
  TimeoutError,
  TransportClosedError,
  type ChannelResetCode,
  type TimeoutCode,
  type AnyMuxError,
  type BaseMuxErrorCode,
  type MuxErrorCode,
  isMuxError,
} from './errors.js';
export * from './options.js';
export * from './frame.js';
export { FrameType, Flag } from './frame-constants.js';
/** @internal The incremental decoder: loaded by `npm run bench:micro`, not part of the API. */
export { FrameDecoder, type FrameSink } from './decoder.js';
export type { WireCodec, CodecCapabilities } from './codec.js';
export { yamuxCodec } from './codecs/yamux.js';
export { multiplexCodec, MULTIPLEX_HEADER_SIZE, MULTIPLEX_FRAGMENT, MultiplexFlag } from './codecs/multiplex.js';
/** @internal Flow-control state, not part of the API. */
export { ReceiveWindow, SessionMemory } from './flow.js';
export { MemoryBudget, sharedMemoryBudget } from './budget.js';
/** @internal The send queue: loaded by `npm run bench:micro`, not part of the API. */
export { FrameBatch, WriteScheduler, type SchedulerHooks, COPY_LIMIT } from './scheduler.js';
export { ChannelState, type ChannelStateName, type ChannelEndpoint, type WriteDone } from './channel-state.js';
export type { ChannelPort } from './channel-port.js';
export type { ChannelFacts } from './channel-facts.js';
export { Emitter, NodeEmitter, type Listener, type NodeEmitterMethods, withNodeEmitterMethods } from './emitter.js';
export type { Transport, TransportEvents } from './transport.js';
export {
  MuxSession,
  type Role,
  type SessionEvents,
  type SessionStatus,
  type EndpointFactory,
  type SessionParts,
  type AcceptOptions,
  type DialOptions,
  type CloseOptions,
  type PingOptions,
} from './session.js';
export { FULL_PARTS } from './full-parts.js';
export { directWrites, type DirectWriteRoute, type DirectWrite, type DirectWriteTarget } from './direct-write.js';
export { UpdateTurns } from './update-turns.js';
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
} from './observe.js';
export { LightChannel, LightSession, type LightChannelEvents } from './light-channel.js';
