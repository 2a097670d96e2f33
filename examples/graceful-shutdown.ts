/**
 * Graceful shutdown, and its bound.
 *
 *   node dist/examples/graceful-shutdown.js
 *
 * `session.close()` sends Go Away (the peer may open no more channels), lets the channels already open finish
 * in both directions, then ends the connection. If some channel does not finish within the timeout, it is
 * reset and the session ends with a `TimeoutError` (`ERR_MUX_CLOSE_TIMEOUT`) on `session.closed`.
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { text } from 'node:stream/consumers';
import { connect, createServer, GoAwayError, type Session } from 'muxwire';

let serverSessionReady!: (session: Session) => void;
const firstServerSession = new Promise<Session>((resolve) => (serverSessionReady = resolve));
const server = createServer((session) => {
  serverSessionReady(session); // (only the first call counts)
  session.on('channel', (channel) => {
    channel.on('error', () => {}); // a reset reaches the client; the server has nothing to add
    // Each channel gets a slow reply: three parts 100 ms apart, then the end.
    let part = 0;
    const timer = setInterval(() => {
      part++;
      if (part < 3) channel.write(`part ${part} `);
      else {
        clearInterval(timer);
        channel.end('part 3');
      }
    }, 100);
    channel.on('close', () => clearInterval(timer));
    channel.resume(); // read (and ignore) what the client sends, so its end arrives
  });
});
server.listen(0, '127.0.0.1');
await once(server, 'listening');
const port = (server.address() as AddressInfo).port;

// 1. A download in flight when the server shuts down still completes.
const client = await connect({ host: '127.0.0.1', port });
const download = client.dial();
download.end('send it');
const reply = text(download);
const serverSession = await firstServerSession;
await new Promise((resolve) => setTimeout(resolve, 50));
const closing = serverSession.close({ timeout: 5_000 });
await once(client, 'goaway');
try {
  client.dial();
} catch (error) {
  console.log(`a new channel after Go Away: ${error instanceof GoAwayError ? 'refused (GoAwayError)' : String(error)}`);
}
console.log(`the download in flight: "${await reply}"`);
await closing;
await client.closed; // the client's session ends with the connection
console.log(`server session: ${serverSession.state}, client session: ${client.state}`);

// 2. A channel that never ends is reset once the timeout runs out; close() still resolves.
const second = await connect({ host: '127.0.0.1', port });
const stuck = second.dial();
stuck.on('error', () => {}); // it will be reset
stuck.write('never ending'); // no end(): this half stays open
await new Promise((resolve) => setTimeout(resolve, 500)); // the server's reply ends its half meanwhile
const started = Date.now();
await second.close({ timeout: 300 });
const outcome = await second.closed.then(
  () => 'clean',
  (error: unknown) => (error as { code?: string }).code,
);
console.log(
  `close() with a channel left open ended after the timeout: ${outcome}, ${Date.now() - started >= 250 ? 'about 300 ms' : 'early'}`,
);

server.close();
