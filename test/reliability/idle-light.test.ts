/**
 * Memory per idle `LightChannel`, each side measured in its own V8 heap: the client session in the test's
 * thread, the server session in a worker thread (an isolate of its own), over loopback TCP. Each channel is
 * set up as the bench's idle workload sets it up (docs/benchmarks.md, idle): the client adds an 'error' and
 * a one-time 'data' listener, writes one byte and gets it back; the server echoes with 'error', 'data' and
 * 'end' listeners. `npm test` opens 100,000 channels and holds each side to 0.6 KiB of heap per channel; the
 * soak (`npm run soak`) opens 1,000,000 and also holds each side's whole heap growth to 1 GiB.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { getHeapStatistics } from 'node:v8';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { lightClient, lightServer, type LightChannel } from '../../src/index.js';
import { collectGarbage } from '../support/resources.js';
import { SOAK, report, scaled } from '../support/soak.js';
import { exitWhenDone } from '../support/watchdog.js';

const CHANNELS = scaled('MUXWIRE_IDLE_LIGHT_CHANNELS', 100_000, 1_000_000);
/** Channels dialled before waiting for their echoes (as the bench's idle workload). */
const BATCH = 1000;
const KiB = 1024;
const GiB = 1024 ** 3;

/** Messages from the worker (the server side). */
type ServerMessage = { port: number } | { heapGrowth: number; channels: number };

/** This isolate's heap after letting pending work finish and collecting garbage. */
async function settledHeap(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    await new Promise((resolve) => setTimeout(resolve, 10));
    collectGarbage();
  }
  return getHeapStatistics().used_heap_size;
}

function sessionOptions(channels: number) {
  // At most one batch is waiting for its ACK or to be accepted at a time.
  return { maxStreams: channels + 16, acceptBacklog: 2 * BATCH, ackBacklog: 2 * BATCH, keepAliveInterval: 0 };
}

/** The worker: a light server that echoes every channel; reports its heap growth when asked. */
function serve(channels: number): void {
  const held: LightChannel[] = [];
  let base = 0;
  const onError = (): void => {};
  function onData(this: LightChannel, chunk: Uint8Array): void {
    this.write(chunk);
  }
  function onEnd(this: LightChannel): void {
    this.end();
  }
  const server = net.createServer((socket) => {
    const session = lightServer(socket, sessionOptions(channels));
    session.on('channel', (channel) => {
      channel.on('error', onError);
      channel.on('data', onData);
      channel.on('end', onEnd);
      held.push(channel);
    });
  });
  parentPort!.on('message', (message: string) => {
    if (message === 'measure') {
      void settledHeap().then((heap) => parentPort!.postMessage({ heapGrowth: heap - base, channels: held.length }));
    } else if (message === 'stop') {
      for (const channel of held) channel.destroy();
      held.length = 0;
      server.close();
      parentPort!.close();
    }
  });
  server.listen(0, '127.0.0.1', () => {
    void settledHeap().then((heap) => {
      base = heap;
      parentPort!.postMessage({ port: (server.address() as net.AddressInfo).port });
    });
  });
}

if (!isMainThread && (workerData as { role?: string } | null)?.role === 'idle-light-server') {
  serve((workerData as { channels: number }).channels);
} else if (isMainThread) {
  exitWhenDone();

  test(
    `${CHANNELS.toLocaleString('en-US')} idle LightChannels on one session cost at most 0.6 KiB of heap each, on each side${SOAK ? ', and each side at most 1 GiB' : ''}`,
    { timeout: SOAK ? 1_800_000 : 300_000 },
    async (t) => {
      const worker = new Worker(new URL(import.meta.url), {
        workerData: { role: 'idle-light-server', channels: CHANNELS },
      });
      const exited = new Promise((resolve) => worker.once('exit', resolve));
      const messages: ServerMessage[] = [];
      let wake: (() => void) | undefined;
      worker.on('message', (message: ServerMessage) => {
        messages.push(message);
        wake?.();
      });
      let workerError: Error | undefined;
      worker.on('error', (error) => {
        workerError = error;
        wake?.();
      });
      /** The worker's next message of the kind `pick` accepts, within `ms`. */
      const next = async <T>(pick: (m: ServerMessage) => T | undefined, ms: number, what: string): Promise<T> => {
        const deadline = performance.now() + ms;
        for (;;) {
          if (workerError) throw workerError;
          for (const m of messages) {
            const value = pick(m);
            if (value !== undefined) {
              messages.splice(messages.indexOf(m), 1);
              return value;
            }
          }
          const left = deadline - performance.now();
          if (left <= 0) throw new Error(`no ${what} from the server worker within ${ms} ms`);
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, left);
            wake = () => {
              clearTimeout(timer);
              resolve();
            };
          });
          wake = undefined;
        }
      };
      const socket = net.connect(await next((m) => ('port' in m ? m.port : undefined), 30_000, 'port'), '127.0.0.1');
      try {
        await new Promise<void>((resolve, reject) => {
          socket.once('connect', resolve);
          socket.once('error', reject);
        });
        const base = await settledHeap();
        const session = lightClient(socket, sessionOptions(CHANNELS));
        const channels = new Array<LightChannel>(CHANNELS);
        const ping = Buffer.from('i');
        let failure: Error | undefined;
        const onError = (error: Error): void => {
          failure ??= error;
        };
        const started = performance.now();
        for (let offset = 0; offset < CHANNELS; offset += BATCH) {
          const size = Math.min(BATCH, CHANNELS - offset);
          await new Promise<void>((resolve, reject) => {
            let pending = size;
            const timer = setTimeout(
              () => reject(new Error(`${pending} of ${size} echoes missing after 30 s (at ${offset})`)),
              30_000,
            );
            const onEcho = (chunk: Uint8Array): void => {
              if (chunk.length !== 1 || chunk[0] !== ping[0]) {
                clearTimeout(timer);
                reject(new Error('wrong echo'));
              } else if (--pending === 0) {
                clearTimeout(timer);
                resolve();
              }
            };
            for (let i = 0; i < size; i++) {
              const channel = session.dial();
              channel.on('error', onError);
              channel.once('data', onEcho);
              channel.write(ping);
              channels[offset + i] = channel;
            }
          });
          if (failure) throw failure;
        }
        const openSeconds = (performance.now() - started) / 1000;
        const clientGrowth = (await settledHeap()) - base;
        worker.postMessage('measure');
        const server = await next((m) => ('heapGrowth' in m ? m : undefined), 120_000, 'heap figure');
        assert.equal(server.channels, CHANNELS, 'the server holds every channel');
        assert.equal(session.channelCount, CHANNELS, 'the client holds every channel');
        const clientKiB = clientGrowth / CHANNELS / KiB;
        const serverKiB = server.heapGrowth / CHANNELS / KiB;
        t.diagnostic(
          report('idle light channels', {
            channels: CHANNELS,
            openSeconds,
            clientHeapPerChannelKiB: clientKiB,
            serverHeapPerChannelKiB: serverKiB,
            clientHeapGrowthMiB: clientGrowth / 1024 ** 2,
            serverHeapGrowthMiB: server.heapGrowth / 1024 ** 2,
          }),
        );
        assert.ok(
          clientKiB > 0.2 && serverKiB > 0.2,
          `${clientKiB.toFixed(3)} / ${serverKiB.toFixed(3)} KiB: the measure saw the channels`,
        );
        assert.ok(clientKiB <= 0.6, `client: ${clientKiB.toFixed(3)} KiB of heap per idle light channel`);
        assert.ok(serverKiB <= 0.6, `server: ${serverKiB.toFixed(3)} KiB of heap per idle light channel`);
        if (SOAK) {
          assert.ok(clientGrowth <= GiB, `client heap grew by ${(clientGrowth / GiB).toFixed(2)} GiB`);
          assert.ok(server.heapGrowth <= GiB, `server heap grew by ${(server.heapGrowth / GiB).toFixed(2)} GiB`);
        }
        for (const channel of channels) channel.destroy(); // (also keeps them referenced until measured)
        session.destroy();
      } finally {
        socket.destroy();
        worker.postMessage('stop');
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([exited, new Promise((resolve) => (timer = setTimeout(resolve, 10_000)))]);
        clearTimeout(timer);
        await worker.terminate();
      }
    },
  );
}
