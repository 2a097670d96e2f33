// muxwire's libp2p stream muxer (`muxwire/libp2p`, this repository's dist/src/libp2p) over the same glue as
// libp2p-yamux: the same connection class over the socket and the same Duplex wrapper per stream, so the two
// libp2p muxers differ only in the muxer. Options as libp2p-yamux's (16 MiB maximum window, read buffers
// above it, stream limits raised to the workload's channel count); a workload of many channels also raises
// muxwire's ACK backlog (libp2p's yamux has none). MUXWIRE_BENCH_OPTIONS (JSON) adds session options.
import { libp2pImplementation } from './libp2p-glue.js';
import { ImplementationUnavailable } from './types.js';

const SPECIFIER = 'muxwire/libp2p';
const MAX_WINDOW = 16 * 1024 * 1024;
const READ_BUFFER = 4 * MAX_WINDOW;
const extra = JSON.parse(process.env.MUXWIRE_BENCH_OPTIONS ?? '{}') as Record<string, unknown>;

interface MuxwireLibp2p {
  muxwire(init: Record<string, unknown>): () => { createStreamMuxer(connection: never): unknown };
}

export default libp2pImplementation(
  {
    name: 'muxwire-libp2p',
    describe: 'muxwire/libp2p (this repo, dist/src) + @libp2p/utils 7.4.1',
    readBuffer: READ_BUFFER,
  },
  async () => {
    let mod: Partial<MuxwireLibp2p>;
    try {
      mod = (await import(SPECIFIER)) as Partial<MuxwireLibp2p>;
    } catch (err) {
      throw new ImplementationUnavailable(
        `muxwire/libp2p not importable (run npm run build): ${(err as Error).message}`,
      );
    }
    const { muxwire } = mod;
    if (typeof muxwire !== 'function') throw new ImplementationUnavailable('muxwire/libp2p not built');
    return (maxChannels) =>
      muxwire({
        maxInboundStreams: maxChannels + 16,
        maxOutboundStreams: maxChannels + 16,
        streamOptions: { maxStreamWindowSize: MAX_WINDOW, maxReadBufferLength: READ_BUFFER },
        session: maxChannels > 1000 ? { ackBacklog: maxChannels, ...extra } : { ...extra },
      })();
  },
);
