// @chainsafe/libp2p-yamux 8.0.1 (on @libp2p/utils 7.4.1) over a Node socket, through libp2p-glue.
//
// Options: stream limits are top-level (maxInboundStreams / maxOutboundStreams, default 1,000 each);
// per-stream settings must go under streamOptions (top-level copies are ignored). The read buffer
// limit (streamOptions.maxReadBufferLength, default 4 MiB) is raised above the 16 MiB maximum window,
// otherwise a paused stream is aborted with a buffer error.
import { libp2pImplementation } from './libp2p-glue.js';

const MAX_WINDOW = 16 * 1024 * 1024;
const READ_BUFFER = 4 * MAX_WINDOW;

export default libp2pImplementation(
  { name: 'libp2p-yamux', describe: '@chainsafe/libp2p-yamux 8.0.1 + @libp2p/utils 7.4.1', readBuffer: READ_BUFFER },
  async () => {
    const { yamux } = await import('@chainsafe/libp2p-yamux');
    return (maxChannels) =>
      yamux({
        maxInboundStreams: maxChannels + 16,
        maxOutboundStreams: maxChannels + 16,
        streamOptions: { maxStreamWindowSize: MAX_WINDOW, maxReadBufferLength: READ_BUFFER },
      })();
  },
);
