/**
 * A client for echo-server.ts: opens three channels at once on one connection, sends a line on each,
 * half-closes, prints what comes back, then closes the session.
 *
 *   node dist/examples/echo-client.js [port]      (default 7000)
 */
import { text } from 'node:stream/consumers';
import { connect } from 'muxwire';

const port = Number(process.argv[2] ?? 7000);
const session = await connect({ host: '127.0.0.1', port });

const replies = await Promise.all(
  ['one', 'two', 'three'].map(async (word) => {
    const channel = session.dial(); // usable at once: no round trip before the first write
    channel.end(`hello from channel ${word}`); // write, then half-close: the echo still comes back
    return text(channel); // reads to the end; rejects (no crash) if the channel is reset
  }),
);
for (const reply of replies) console.log(reply);

// Every channel has ended both ways, so close() finishes at once.
await session.close();
