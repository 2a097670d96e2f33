/**
 * HTTP over channels: a plain `node:http` server takes channels as its connections, and a keep-alive
 * `http.Agent` dials channels instead of TCP connections, so many requests share one channel and many
 * channels share one TCP connection.
 *
 *   node dist/examples/http.js
 */
import http from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { type Channel, connect, createServer, type Session } from 'muxwire';

// The HTTP server never listens itself: each channel is handed to it as a new connection.
const httpServer = http.createServer((req, res) => {
  res.end(`${req.method} ${req.url} served on channel ${(req.socket as unknown as Channel).id}\n`);
});
const server = createServer((session) => {
  session.on('channel', (channel) => httpServer.emit('connection', channel));
});
server.listen(0, '127.0.0.1');
await once(server, 'listening');
// Its request timeouts and the bookkeeping of closeIdleConnections() start on 'listening', which a server that
// never listens must be given.
httpServer.emit('listening');

/** An agent whose connections are channels of one session; keepAlive keeps a channel for the next request. */
class ChannelAgent extends http.Agent {
  constructor(private readonly session: Session) {
    super({ keepAlive: true, maxSockets: 4 });
  }
  override createConnection(
    _options: http.ClientRequestArgs,
    callback?: (error: Error | null, socket: Channel) => void,
  ): Channel | undefined {
    try {
      const channel = this.session.dial();
      // As a socket from net.connect: it ends its side on the server's FIN, so the agent drops it from its pool
      // instead of sending the next request into a channel nobody reads.
      channel.allowHalfOpen = false;
      return channel;
    } catch (error) {
      // The session is going away or failed: the request fails with the reason; a throw here would end the process.
      process.nextTick(() => callback?.(error as Error, undefined as never));
      return undefined;
    }
  }
}

const session = await connect({ host: '127.0.0.1', port: (server.address() as AddressInfo).port });
const agent = new ChannelAgent(session);

function get(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    // The 'error' listener matters: a request whose channel is reset fails here instead of crashing.
    http
      .get({ host: 'muxwire.invalid', path, agent }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve(body));
        res.on('error', reject);
      })
      .on('error', reject);
  });
}

for (const path of ['/', '/a', '/b']) process.stdout.write(await get(path)); // one after another: one channel
const parallel = await Promise.all(['/p1', '/p2', '/p3', '/p4'].map(get)); // at once: up to maxSockets channels
process.stdout.write(parallel.join(''));

agent.destroy(); // ends the kept-alive channels
await session.close();
server.close();
httpServer.close();
