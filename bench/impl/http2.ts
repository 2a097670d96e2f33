// node:http2 over one connection (nghttp2 underneath): every channel is one POST stream, the request
// body carries client->server bytes, the response body server->client bytes. Windows are raised to
// 16 MiB (stream windows by SETTINGS_INITIAL_WINDOW_SIZE, the connection window by setLocalWindowSize).
import http2 from 'node:http2';
import type { Implementation } from './types.js';

const WINDOW = 16 * 1024 * 1024;
// maxSessionMemory is in MB; the default (10) makes nghttp2 refuse streams with thousands open.
const SESSION_MEMORY_MB = 64 * 1024;

function settings(maxChannels: number): http2.Settings {
  return { initialWindowSize: WINDOW, maxConcurrentStreams: Math.max(1000, maxChannels * 2), enablePush: false };
}

const impl: Implementation = {
  name: 'http2',
  describe: `node:http2 (Node ${process.versions.node}, nghttp2 ${process.versions.nghttp2}), 16 MiB windows`,
  transport: 'shared',
  server(socket, onChannel, opts, hooks) {
    const server = http2.createServer({
      settings: settings(opts.maxChannels),
      maxSessionMemory: SESSION_MEMORY_MB,
      peerMaxConcurrentStreams: Math.max(1000, opts.maxChannels * 2),
    });
    let session: http2.ServerHttp2Session | undefined;
    server.on('session', (s) => {
      session = s;
      s.on('error', (err: Error) => hooks.onError(err));
      s.setLocalWindowSize(WINDOW);
    });
    server.on('stream', (stream) => {
      stream.respond({ ':status': 200 });
      onChannel(stream);
    });
    server.on('sessionError', (err) => hooks.onError(err));
    server.emit('connection', socket);
    return {
      close: () =>
        new Promise<void>((resolve) => {
          if (!session) {
            resolve();
            return;
          }
          session.close(() => resolve());
        }),
    };
  },
  async client(dialer, opts, hooks) {
    const socket = await dialer.connect();
    const session = http2.connect('http://127.0.0.1', {
      createConnection: () => socket,
      settings: settings(opts.maxChannels),
      maxSessionMemory: SESSION_MEMORY_MB,
      peerMaxConcurrentStreams: Math.max(1000, opts.maxChannels * 2),
    });
    session.on('error', (err: Error) => hooks.onError(err));
    // Wait for the server's SETTINGS so its stream limit and window apply before the first request.
    await new Promise<void>((resolve, reject) => {
      session.once('remoteSettings', () => resolve());
      session.once('error', reject);
    });
    session.setLocalWindowSize(WINDOW);
    return {
      open: () => session.request({ ':method': 'POST', ':path': '/' }, { endStream: false }),
      close: () => new Promise<void>((resolve) => session.close(() => resolve())),
    };
  },
};

export default impl;
