/**
 * The original Go package's README example at full scale: a server and a client over one loopback TCP
 * connection, 10,000 channels each writing "hello" and reading the echo. Prints elapsed time, channels per
 * second and heap memory per channel.
 *
 * Run with `npm start` (or `node --expose-gc dist/examples/hello-10k.js [channels]`).
 */
import type { AddressInfo } from 'node:net';
import { type Channel, connect, createServer } from '../src/index.js';

const CHANNELS = Number(process.argv[2] ?? 10_000);
const MESSAGE = Buffer.from('hello');

function heapUsed(): number {
  (globalThis as { gc?: () => void }).gc?.();
  return process.memoryUsage().heapUsed;
}

/** Writes "hello" and resolves once the 5-byte echo is back. */
function hello(channel: Channel): Promise<void> {
  return new Promise((resolve, reject) => {
    let received = 0;
    channel.on('error', reject);
    channel.on('data', (data: Buffer) => {
      if (!data.equals(MESSAGE.subarray(received, received + data.length))) reject(new Error('echo differs'));
      received += data.length;
      if (received === MESSAGE.length) resolve();
    });
    channel.write(MESSAGE);
  });
}

function closed(channel: Channel): Promise<void> {
  return new Promise((resolve, reject) => {
    if (channel.destroyed) resolve();
    channel.once('close', () => (channel.failure ? reject(channel.failure) : resolve()));
  });
}

async function main(): Promise<void> {
  // The server echoes every channel and ends its side when the client ends.
  const server = createServer({ maxStreams: CHANNELS + 100 }, (session) => {
    session.on('channel', (channel) => {
      channel.on('data', (data: Buffer) => channel.write(data));
      channel.on('end', () => channel.end());
      channel.on('error', () => {});
    });
    session.on('close', (error) => {
      if (error) console.error('server session:', error.message);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  const session = await connect({ host: '127.0.0.1', port, maxStreams: CHANNELS + 100 });
  const heapBefore = heapUsed();
  const started = performance.now();

  const channels: Channel[] = [];
  for (let i = 0; i < CHANNELS; i++) channels.push(session.dial());
  await Promise.all(channels.map(hello));
  const echoed = performance.now();
  const heapOpen = heapUsed();

  for (const channel of channels) channel.end();
  await Promise.all(channels.map(closed));
  const finished = performance.now();

  await session.close();
  server.close();

  const seconds = (finished - started) / 1000;
  const perChannel = (heapOpen - heapBefore) / CHANNELS;
  console.log(`muxwire hello example: ${CHANNELS.toLocaleString('en-US')} channels over one loopback TCP connection`);
  console.log(`  opened, echoed "hello" on every channel: ${(echoed - started).toFixed(0)} ms`);
  console.log(`  all channels closed:                      ${(finished - started).toFixed(0)} ms`);
  console.log(`  channels per second:                      ${Math.round(CHANNELS / seconds).toLocaleString('en-US')}`);
  console.log(`  heap per open channel (both ends):        ${(perChannel / 1024).toFixed(2)} KiB`
    + `${(globalThis as { gc?: unknown }).gc ? '' : ' (run with --expose-gc for an exact figure)'}`);
  console.log(`  session after close: ${session.state}, channels left open: ${session.channelCount}`);
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
