/**
 * Every optional part of a session ({@link SessionParts}), for the sessions that run where bundle size does
 * not count and `setImmediate` exists: the Node adapters and `LightSession`. A page's `WebSession` passes only
 * what its options ask for.
 * @module
 */
import { multiplexCodec } from './codecs/multiplex.js';
import { directWrites } from './direct-write.js';
import { logRecords } from './observe.js';
import type { SessionParts } from './session.js';
import { UpdateTurns } from './update-turns.js';

/** The multiplex codec, the log records, the direct route of large writes and the held Window Updates. */
export const FULL_PARTS: Readonly<SessionParts> = {
  multiplexCodec,
  logRecords,
  directWrites,
  updateTurns: UpdateTurns,
};
