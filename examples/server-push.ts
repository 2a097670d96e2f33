/**
 * Server push: once a client is connected, the server opens channels to it, as easily as the reverse.
 *
 *   node dist/examples/server-push.js
 *
 * A graceful `close()` waits for every channel to end in both directions. A channel the other side opened
 * and this side only reads is still open for writing here: end it (`channel.end()`), or `close()` waits for
 * it until its timeout.
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { text } from 'node:stream/consumers';
import { connect, createServer } from 'muxwire';

const server = createServer((session) => {
  // The server dials: this channel goes to the client.
  const news = session.dial();
  news.on('error', () => {}); // a client that leaves early resets the channel: reported on 'close' below
  news.resume(); // nothing to read, but a Node stream reports its end (and then 'close') only when read
  news.on('close', () =>
    console.log(news.failure ? `news channel reset: ${news.failure.message}` : 'news channel closed at both ends'),
  );
  news.write('news 1: the server can dial too\n');
  setTimeout(() => news.end('news 2: and end its side when done\n'), 100);
});
server.listen(0, '127.0.0.1');
await once(server, 'listening');

const session = await connect({ host: '127.0.0.1', port: (server.address() as AddressInfo).port });
const pushed = await session.accept({ signal: AbortSignal.timeout(5_000) });
// The client sends nothing on this channel, so it ends its half at once: a channel read to its end (text(),
// `for await`) stays open for writing until end(), and holds the session's graceful close until then.
pushed.end();
process.stdout.write(await text(pushed)); // reads until the server's end

await session.close();
server.close();
