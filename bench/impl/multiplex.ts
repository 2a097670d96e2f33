// multiplex 6.7.0 (max-mapper, npm `multiplex`): varint-framed channels, a readable-stream v2 Duplex per
// channel, no flow control beyond pausing the whole transport. `halfOpen: true` keeps a channel's
// writable side open after the peer ends (without it, 'end' also ends our side).
import multiplex from 'multiplex';
import type { Implementation } from './types.js';

const OPTIONS = { halfOpen: true };

const impl: Implementation = {
  name: 'multiplex',
  describe: 'multiplex 6.7.0 (max-mapper)',
  transport: 'shared',
  server(socket, onChannel, _opts, hooks) {
    const plex = multiplex(OPTIONS, (stream) => onChannel(stream));
    plex.on('error', (err: Error) => hooks.onError(err));
    socket.pipe(plex).pipe(socket);
    return {
      async close() {
        plex.end();
      },
    };
  },
  async client(dialer, _opts, hooks) {
    const socket = await dialer.connect();
    const plex = multiplex(OPTIONS);
    plex.on('error', (err: Error) => hooks.onError(err));
    socket.pipe(plex).pipe(socket);
    return {
      open: () => plex.createStream(),
      async close() {
        plex.end();
      },
    };
  },
};

export default impl;
