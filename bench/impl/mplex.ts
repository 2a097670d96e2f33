// @libp2p/mplex 12.0.32 (on @libp2p/utils 7.4.1) over a Node socket, through libp2p-glue.
//
// Quirks: mplex has no flow control (pause/resume are no-ops on the wire), so the read buffer limit
// (streamOptions.maxReadBufferLength, default 4 MiB) is raised; and it rate-limits NEW_STREAM
// messages with `disconnectThreshold` (default 5 per second!), aborting the whole connection past it,
// so the threshold is raised for the many-channel workloads.
import type { Implementation, Channel } from './types.js';
import { GLUE_BYTES_PER_CHANNEL, asChannel, socketConnectionClass, type Libp2pStream } from './libp2p-glue.js';

const READ_BUFFER = 64 * 1024 * 1024;

interface MuxerLike {
  createStream(): Promise<Libp2pStream>;
  addEventListener(type: 'stream', listener: (evt: CustomEvent<Libp2pStream>) => void): void;
  close(): Promise<void>;
}

async function load() {
  const Conn = await socketConnectionClass();
  const { mplex } = await import('@libp2p/mplex');
  const factory = () =>
    mplex({
      disconnectThreshold: 1e9,
      // streamOptions is accepted by the underlying AbstractStreamMuxer though MplexInit omits it
      streamOptions: { maxReadBufferLength: READ_BUFFER },
    } as Parameters<typeof mplex>[0])();
  return { Conn, factory };
}

const loaded = load();

const impl: Implementation = {
  name: 'mplex',
  describe: '@libp2p/mplex 12.0.32 + @libp2p/utils 7.4.1',
  transport: 'shared',
  glueBytesPerChannel: GLUE_BYTES_PER_CHANNEL,
  server(socket, onChannel, _opts, hooks) {
    let muxer: MuxerLike | undefined;
    loaded.then(
      ({ Conn, factory }) => {
        const conn = new Conn(socket, 'inbound', READ_BUFFER);
        muxer = factory().createStreamMuxer(conn as never) as unknown as MuxerLike;
        muxer.addEventListener('stream', (evt) => onChannel(asChannel(evt.detail)));
      },
      (err: Error) => hooks.onError(err),
    );
    return { close: async () => muxer?.close() };
  },
  async client(dialer) {
    const { Conn, factory } = await loaded;
    const socket = await dialer.connect();
    const conn = new Conn(socket, 'outbound', READ_BUFFER);
    const muxer = factory().createStreamMuxer(conn as never) as unknown as MuxerLike;
    return {
      open: (): Channel => asChannel(muxer.createStream()),
      close: () => muxer.close(),
    };
  },
};

export default impl;
