// @libp2p/mplex 12.0.32 (on @libp2p/utils 7.4.1) over a Node socket, through libp2p-glue.
//
// Quirks: mplex has no flow control (pause/resume are no-ops on the wire), so the read buffer limit
// (streamOptions.maxReadBufferLength, default 4 MiB) is raised; and it rate-limits NEW_STREAM
// messages with `disconnectThreshold` (default 5 per second!), aborting the whole connection past it,
// so the threshold is raised for the many-channel workloads.
// mplex is deprecated upstream, and measured here on purpose.
/* eslint-disable @typescript-eslint/no-deprecated */
import { libp2pImplementation } from './libp2p-glue.js';

const READ_BUFFER = 64 * 1024 * 1024;

export default libp2pImplementation(
  { name: 'mplex', describe: '@libp2p/mplex 12.0.32 + @libp2p/utils 7.4.1', readBuffer: READ_BUFFER },
  async () => {
    const { mplex } = await import('@libp2p/mplex');
    return () =>
      mplex({
        disconnectThreshold: 1e9,
        // streamOptions is accepted by the underlying AbstractStreamMuxer though MplexInit omits it
        streamOptions: { maxReadBufferLength: READ_BUFFER },
      } as Parameters<typeof mplex>[0])();
  },
);
