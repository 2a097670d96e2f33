/**
 * The original Go package's README example at full scale: a server and a client over one loopback TCP
 * connection, 10,000 channels each writing "hello" and reading the echo, then closing. Prints elapsed time,
 * channels per second and heap memory per channel.
 *
 * Run with `npm start`, or `node --expose-gc dist/examples/hello-10k.js [channels]` after `npm run build`.
 */
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import { type Channel, connect, createServer } from 'muxwire';

const MESSAGE = Buffer.from('hello');

/** What one run of the example measured. */
export interface HelloResult {
  channels: number;
  /** Milliseconds until every channel had its echo back. */
  echoedMs: number;
  /** Milliseconds until every channel was closed at both ends. */
  totalMs: number;
  channelsPerSecond: number;
  /** Heap bytes per open channel, client and server ends together (exact when run with --expose-gc). */
  heapPerChannel: number;
  exactHeap: boolean;
  /** Channels still open on the client session after closing (must be 0). */
  leftOpen: number;
  /** Channels whose exact echo came back to the client (must be `channels`). */
  echoed: number;
  /** Channels the server accepted (must be `channels`). */
  accepted: number;
  /** Channels still open on the server's session after closing (must be 0). */
  serverLeftOpen: number;
}

function heapUsed(): number {
  (globalThis as { gc?: () => void }).gc?.();
  return process.memoryUsage().heapUsed;
}

/** Writes "hello" and resolves once the 5-byte echo is back (counted in `counts.echoed`). */
function hello(channel: Channel, counts: { echoed: number }): Promise<void> {
  return new Promise((resolve, reject) => {
    let received = 0;
    channel.on('error', reject);
    channel.on('data', (data: Buffer) => {
      if (!data.equals(MESSAGE.subarray(received, received + data.length))) reject(new Error('echo differs'));
      received += data.length;
      if (received === MESSAGE.length) {
        counts.echoed++;
        resolve();
      }
    });
    channel.write(MESSAGE);
  });
}

function closed(channel: Channel): Promise<void> {
  return new Promise((resolve, reject) => {
    const settle = (): void => (channel.failure ? reject(channel.failure) : resolve());
    if (channel.closed) settle();
    else channel.once('close', settle);
  });
}

/** Runs the example with `channels` channels and returns its figures. */
export async function helloExample(channels: number): Promise<HelloResult> {
  // The server echoes every channel and ends its side when the client ends.
  const counts = { echoed: 0, accepted: 0 };
  let serverSession: { channelCount: number } | undefined;
  const server = createServer({ maxStreams: channels + 100 }, (session) => {
    serverSession = session;
    session.on('channel', (channel) => {
      counts.accepted++;
      channel.on('data', (data: Buffer) => channel.write(data));
      channel.on('end', () => channel.end());
      channel.on('error', () => {});
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  try {
    const session = await connect({ host: '127.0.0.1', port, maxStreams: channels + 100 });
    const heapBefore = heapUsed();
    const started = performance.now();

    const open: Channel[] = [];
    for (let i = 0; i < channels; i++) open.push(session.dial());
    await Promise.all(open.map((channel) => hello(channel, counts)));
    const echoed = performance.now();
    const heapOpen = heapUsed();

    for (const channel of open) channel.end();
    await Promise.all(open.map(closed));
    const finished = performance.now();
    const leftOpen = session.channelCount;
    await session.close();
    // The server's session ends once the client's Go Away and end of transport reach it.
    const serverLeftOpen = serverSession?.channelCount ?? -1;

    return {
      channels,
      echoedMs: echoed - started,
      totalMs: finished - started,
      channelsPerSecond: channels / ((finished - started) / 1000),
      heapPerChannel: (heapOpen - heapBefore) / channels,
      exactHeap: typeof (globalThis as { gc?: unknown }).gc === 'function',
      leftOpen,
      echoed: counts.echoed,
      accepted: counts.accepted,
      serverLeftOpen,
    };
  } finally {
    server.close();
  }
}

async function main(): Promise<void> {
  const channels = Number(process.argv[2] ?? 10_000);
  if (!Number.isInteger(channels) || channels < 1) throw new RangeError('channels must be a positive integer');
  const r = await helloExample(channels);
  console.log(`muxwire hello example: ${channels.toLocaleString('en-US')} channels over one loopback TCP connection`);
  console.log(`  every channel opened, wrote "hello", read the echo: ${r.echoedMs.toFixed(0)} ms`);
  console.log(`  every channel closed at both ends:                  ${r.totalMs.toFixed(0)} ms`);
  console.log(
    `  channels per second:                                ${Math.round(r.channelsPerSecond).toLocaleString('en-US')}`,
  );
  console.log(
    `  heap per open channel, client and server together:  ${(r.heapPerChannel / 1024).toFixed(2)} KiB` +
      (r.exactHeap ? '' : ' (approximate: run with --expose-gc)'),
  );
  console.log(`  channels left open after closing:                   ${r.leftOpen}`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  });
}
