// The muxwire/web client that runtimes.test.ts runs under Bun, Deno, Node 22 and Node 24: with the runtime's own
// global WebSocket, it first connects to a server that drops every connection (its second argument: the connection
// must fail with WebSocketClosedError 1006, where Node 22's WebSocket fires no 'close' and Deno's gives code 0), then to the Node server at the
// URL given as its first argument, echoes 20 channels it dials (SHA-256 of each checked), reads the one
// channel the server pushes, closes the session gracefully and prints one line: RESULT {json}. Plain
// JavaScript over the built entry (dist/), so no runtime compiles it.
import { connectWebSocket } from '../../dist/src/web/index.js';

const args = globalThis.Deno?.args ?? globalThis.process?.argv.slice(2) ?? [];
const url = args[0];
const nobodyThere = args[1];

async function hex(data) {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', data));
  return Array.from(digest, (byte) => byte.toString(16).padStart(2, '0')).join('');
}

async function readAll(readable) {
  const chunks = [];
  for (const reader = readable.getReader(); ;) {
    const { value, done } = await reader.read();
    if (done) break;
    chunks.push(value);
  }
  const all = new Uint8Array(chunks.reduce((sum, chunk) => sum + chunk.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    all.set(chunk, offset);
    offset += chunk.length;
  }
  return all;
}

const refused = await connectWebSocket(nobodyThere, { keepAliveInterval: 0 }).then(
  (session) => {
    session.destroy();
    return 'connected';
  },
  (error) => `${error.name} ${error.closeCode}`,
);
const session = await connectWebSocket(url, { keepAliveInterval: 0 });
const pushed = session.accept({ signal: AbortSignal.timeout(20_000) }).then(async (channel) => {
  const text = new TextDecoder().decode(await readAll(channel.readable));
  await channel.writable.close();
  return text;
});
const exact = await Promise.all(
  Array.from({ length: 20 }, async (_, i) => {
    const data = crypto.getRandomValues(new Uint8Array(1 + i * 3001));
    const channel = session.dial();
    const writer = channel.writable.getWriter();
    const [echo] = await Promise.all([readAll(channel.readable), writer.write(data).then(() => writer.close())]);
    return (await hex(echo)) === (await hex(data));
  }),
);
const result = { refused, exact: exact.filter(Boolean).length, pushed: await pushed };
await session.close();
console.log(`RESULT ${JSON.stringify(result)}`);
