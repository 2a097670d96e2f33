// The Node entry ('muxwire': TCP sessions, Duplex channels) that runtimes.test.ts runs under Bun, Deno, Node 22
// and Node 24 through their Node compatibility (node:net, node:stream, node:crypto). It connects to the Node
// server whose port is its first argument, dials 50 channels that each write 64 KiB of their own bytes and
// read the echo (SHA-256 of each checked), one channel that carries 8 MiB each way, one the server resets
// (ChannelResetError expected), then closes gracefully and prints one line: RESULT {json}. Plain JavaScript
// over the built entry (dist/), so no runtime compiles it.
import { createHash } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import { ChannelResetError, connect } from '../../dist/src/index.js';

const port = Number((globalThis.Deno?.args ?? process.argv.slice(2))[0]);

const digest = (bytes) => createHash('sha256').update(bytes).digest('hex');

/** `size` bytes that depend on `seed`: each channel's are its own. */
function bytesOf(size, seed) {
  const bytes = Buffer.alloc(size);
  let state = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    bytes[i] = state & 0xff;
  }
  return bytes;
}

/** Writes `data` (in 64 KiB pieces, with backpressure) and ends; resolves to the SHA-256 of what came back. */
async function echo(channel, data) {
  const chunks = [];
  const read = (async () => {
    for await (const chunk of channel) chunks.push(chunk);
  })();
  // (pipeline ends the channel's writing; its reading goes on until the echo's end.)
  await pipeline(async function* () {
    for (let at = 0; at < data.length; at += 65536) yield data.subarray(at, at + 65536);
  }, channel);
  await read;
  return digest(Buffer.concat(chunks));
}

const session = await connect({ host: '127.0.0.1', port, keepAliveInterval: 0 });
let exact = 0;
await Promise.all(
  Array.from({ length: 50 }, async (_, i) => {
    const data = bytesOf(64 * 1024, i + 1);
    if ((await echo(session.dial(), data)) === digest(data)) exact++;
  }),
);
const big = bytesOf(8 * 1024 * 1024, 99);
const bulk = (await echo(session.dial(), big)) === digest(big);
const doomed = session.dial();
doomed.end('reset me');
const reset = await new Promise((resolve) => {
  doomed.on('error', (error) => resolve(error instanceof ChannelResetError ? error.code : `other: ${error}`));
  doomed.on('close', () => resolve('closed without an error'));
  doomed.resume();
});
await session.close();
console.log(`RESULT ${JSON.stringify({ exact, bulk, reset, closeError: session.closeError?.code ?? null })}`);
