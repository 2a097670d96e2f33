// Raw TCP: the limit. Every channel is its own loopback TCP connection (one socket for the
// one-channel workloads, one socket per channel for the many-channel ones).
import type { Implementation } from './types.js';

const impl: Implementation = {
  name: 'raw-tcp',
  describe: 'node:net (one socket per channel)',
  transport: 'per-channel',
  server(socket, onChannel) {
    onChannel(socket);
    return {
      async close() {
        socket.end();
      },
    };
  },
  async client(dialer) {
    return { open: () => dialer.dial(), async close() {} };
  },
};

export default impl;
