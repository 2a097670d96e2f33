/**
 * An echo server: every channel a client opens gets its own bytes back.
 *
 *   node dist/examples/echo-server.js [port]      (default 7000; 0 picks a free port)
 *
 * It prints `listening on 127.0.0.1:<port>` and runs until SIGINT or SIGTERM, then shuts down gracefully:
 * the listener stops taking connections, each session says Go Away and lets its open channels finish
 * (for at most 5 seconds), and the process exits by itself.
 */
import type { AddressInfo } from 'node:net';
import { pipeline } from 'node:stream';
import { createServer, type Session } from 'muxwire';

const port = Number(process.argv[2] ?? 7000);
const sessions = new Set<Session>();

const server = createServer((session) => {
  sessions.add(session);
  session.on('close', () => sessions.delete(session));
  session.on('channel', (channel) => {
    // pipeline(), unlike pipe(), listens for 'error': a client that resets its channel or drops its
    // connection ends this one channel with a typed error instead of crashing the server.
    pipeline(channel, channel, (error) => {
      if (error)
        console.log(`channel ${channel.id} ended early: ${(error as { code?: string }).code ?? error.message}`);
    });
  });
});

server.listen(port, '127.0.0.1', () => {
  console.log(`listening on 127.0.0.1:${(server.address() as AddressInfo).port}`);
});

async function shutdown(): Promise<void> {
  server.close(); // no new connections
  // Graceful: each session sends Go Away, refuses new channels and waits for open ones to end both ways.
  await Promise.allSettled([...sessions].map((session) => session.close({ timeout: 5_000 })));
  console.log('closed');
}
process.once('SIGINT', () => void shutdown());
process.once('SIGTERM', () => void shutdown());
