/**
 * Server push: once a client is connected, the server opens channels to it, as easily as the reverse.
 *
 *   node dist/examples/server-push.js
 *
 * A graceful `close()` waits for every channel to end in both directions. A channel the other side opened
 * and this side only read is still open for writing here, so end it (`channel.end()`) when done with it,
 * or `close()` waits for it until its timeout.
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { text } from 'node:stream/consumers';
import { connect, createServer } from 'muxwire';

const server = createServer((session) => {
  // The server dials: this channel goes to the client.
  const news = session.dial();
  news.on('error', () => {}); // a client that leaves early resets the channel: nothing to do about it here
  news.write('news 1: the server can dial too\n');
  setTimeout(() => news.end('news 2: and end its side when done\n'), 100);
});
server.listen(0, '127.0.0.1');
await once(server, 'listening');

const session = await connect({ host: '127.0.0.1', port: (server.address() as AddressInfo).port });
const pushed = await session.accept({ signal: AbortSignal.timeout(5_000) });
process.stdout.write(await text(pushed)); // reads until the server's end
pushed.end(); // our half: without it, close() below would wait for this channel

await session.close();
server.close();
