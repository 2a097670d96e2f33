// @chainsafe/libp2p-yamux 8.0.1 (on @libp2p/utils 7.4.1) over a Node socket, through libp2p-glue.
//
// Options: stream limits are top-level (maxInboundStreams / maxOutboundStreams, default 1,000 each);
// per-stream settings must go under streamOptions (top-level copies are ignored). The read buffer
// limit (streamOptions.maxReadBufferLength, default 4 MiB) is raised above the 16 MiB maximum window,
// otherwise a paused stream is aborted with a buffer error.
import type { Implementation, Channel } from './types.js';
import { GLUE_BYTES_PER_CHANNEL, asChannel, socketConnectionClass, type Libp2pStream } from './libp2p-glue.js';

const MAX_WINDOW = 16 * 1024 * 1024;
const READ_BUFFER = 4 * MAX_WINDOW;

interface MuxerLike {
  createStream(): Promise<Libp2pStream>;
  addEventListener(type: 'stream', listener: (evt: CustomEvent<Libp2pStream>) => void): void;
  close(): Promise<void>;
}

async function load() {
  const Conn = await socketConnectionClass();
  const { yamux } = await import('@chainsafe/libp2p-yamux');
  const factory = (maxChannels: number) =>
    yamux({
      maxInboundStreams: maxChannels + 16,
      maxOutboundStreams: maxChannels + 16,
      streamOptions: { maxStreamWindowSize: MAX_WINDOW, maxReadBufferLength: READ_BUFFER },
    })();
  return { Conn, factory };
}

const loaded = load();

const impl: Implementation = {
  name: 'libp2p-yamux',
  describe: '@chainsafe/libp2p-yamux 8.0.1 + @libp2p/utils 7.4.1',
  transport: 'shared',
  glueBytesPerChannel: GLUE_BYTES_PER_CHANNEL,
  server(socket, onChannel, opts, hooks) {
    let muxer: MuxerLike | undefined;
    loaded.then(
      ({ Conn, factory }) => {
        const conn = new Conn(socket, 'inbound', READ_BUFFER);
        muxer = factory(opts.maxChannels).createStreamMuxer(conn as never) as unknown as MuxerLike;
        muxer.addEventListener('stream', (evt) => onChannel(asChannel(evt.detail)));
      },
      (err: Error) => hooks.onError(err),
    );
    return { close: async () => muxer?.close() };
  },
  async client(dialer, opts) {
    const { Conn, factory } = await loaded;
    const socket = await dialer.connect();
    const conn = new Conn(socket, 'outbound', READ_BUFFER);
    const muxer = factory(opts.maxChannels).createStreamMuxer(conn as never) as unknown as MuxerLike;
    return {
      open: (): Channel => asChannel(muxer.createStream()),
      close: () => muxer.close(),
    };
  },
};

export default impl;
