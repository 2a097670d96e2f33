// yamux-js 0.2.0 (th-ch): a Transform-stream session piped between the socket and itself; streams are
// Node Duplexes. Used as its README shows. Facts from its source (lib/session.js, lib/stream.js):
// - Config: acceptBacklog (default 256; it counts *all* open streams, so it is raised to the channel
//   count), maxStreamWindowSize (default 256 KiB), enableKeepAlive, keepAliveInterval (s), logger.
// - maxStreamWindowSize stays at its default: above 256 KiB, the opener announces the extra window on
//   its SYN frame, but the accepting side returns right after creating the stream and never applies
//   that increment, so the accepter->opener direction stalls for good after 256 KiB (seen in rr-1 at
//   exactly request 4,096 x 64 bytes) while the opener waits for 8 MiB before its next update.
// - Its decoder drops bytes when a frame is split across socket reads (a partial header, or a Data
//   payload not yet complete), then reads a header from the middle of a payload: "Invalid protocol
//   version" / "invalid msg type". Any bulk transfer hits this.
// - A stream's end() sends nothing (no _final); FIN is sent by stream.close(), so the adapter maps
//   end() to close(). Received FINs are never delivered as 'end' (its flag check tests SYN).
import { Duplex } from 'node:stream';
import yamuxjs from 'yamux-js';
import type { Implementation, Channel } from './types.js';

function config(maxChannels: number, hooks: { onError(err: Error): void }) {
  return {
    acceptBacklog: maxChannels + 16,
    enableKeepAlive: false,
    logger: (msg: unknown, ...args: unknown[]) => {
      const text = String(msg);
      if (text.startsWith('[ERR]'))
        hooks.onError(new Error(`yamux-js: ${text.replace(/%d/g, () => String(args.shift()))}`));
    },
  };
}

// end() on a yamux-js stream only finishes locally; send the FIN through its close().
function withHalfClose(stream: Duplex): Channel {
  const s = stream as Duplex & { close(): void };
  s._final = (cb: (err?: Error | null) => void) => {
    try {
      s.close();
      cb();
    } catch (err) {
      cb(err as Error);
    }
  };
  return s;
}

const impl: Implementation = {
  name: 'yamux-js',
  describe: 'yamux-js 0.2.0 (th-ch)',
  transport: 'shared',
  server(socket, onChannel, opts, hooks) {
    const server = new yamuxjs.Server(
      (stream: Duplex) => onChannel(withHalfClose(stream)),
      config(opts.maxChannels, hooks),
    );
    server.on('error', (err: Error) => hooks.onError(err));
    socket.pipe(server).pipe(socket);
    return {
      async close() {
        server.close();
      },
    };
  },
  async client(dialer, opts, hooks) {
    const socket = await dialer.connect();
    const client = new yamuxjs.Client(config(opts.maxChannels, hooks));
    client.on('error', (err: Error) => hooks.onError(err));
    socket.pipe(client).pipe(socket);
    return {
      open: () => withHalfClose(client.open()),
      async close() {
        client.close();
      },
    };
  },
};

export default impl;
