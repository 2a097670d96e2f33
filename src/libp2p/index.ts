/**
 * muxwire as libp2p's stream muxer: `muxwire()` is a drop-in for `yamux()` from `@chainsafe/libp2p-yamux`
 * (the same protocol id, `/yamux/1.0.0`, the same option names), with muxwire's session under the streams.
 *
 * ```ts
 * import { createLibp2p } from 'libp2p';
 * import { muxwire } from 'muxwire/libp2p';
 *
 * const node = await createLibp2p({ streamMuxers: [muxwire()] }); // with the node's other options
 * ```
 *
 * This entry needs `@libp2p/interface`, `@libp2p/utils` and `uint8arraylist` (peer dependencies, present in
 * any libp2p application); muxwire's other entries do not.
 * @module
 */
import { type MessageStream, type StreamMuxerFactory, serviceCapabilities } from '@libp2p/interface';
import { MuxwireMuxer, YAMUX_PROTOCOL_ID } from './muxer.js';
import { type MuxwireInit, resolveInit } from './options.js';

export { MuxwireMuxer, YAMUX_PROTOCOL_ID } from './muxer.js';
export { MuxwireStream } from './stream.js';
export type { MuxwireInit, MuxwireStreamOptions } from './options.js';
export { toLibp2pError } from './errors.js';

/** The stream muxer factory `muxwire()` makes: what libp2p's `streamMuxers` option holds. */
export interface MuxwireFactory extends StreamMuxerFactory<MuxwireMuxer> {
  readonly protocol: typeof YAMUX_PROTOCOL_ID;
}

/**
 * Returns what libp2p's `streamMuxers` option takes: a function of the node's components returning a
 * {@link MuxwireFactory}. The options are checked here, once: anything invalid throws libp2p's
 * `InvalidParametersError`.
 */
export function muxwire(init: MuxwireInit = {}): (components?: unknown) => MuxwireFactory {
  const resolved = resolveInit(init);
  return () => ({
    protocol: YAMUX_PROTOCOL_ID,
    createStreamMuxer: (connection: MessageStream) => new MuxwireMuxer(connection, resolved),
    [Symbol.toStringTag]: 'muxwire',
    [serviceCapabilities]: ['@libp2p/stream-multiplexing'],
  });
}
