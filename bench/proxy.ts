// Child process: a user-space TCP proxy on 127.0.0.1 that delays every byte by a fixed time in each
// direction (long-fat: 25 ms each way, so 50 ms RTT), preserving byte order. Memory is bounded per
// direction: past maxBufferedBytes held, it stops reading that side until half has been delivered.
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { errorText, reportCrashes, send, type ProxyConfig } from './ipc.js';

reportCrashes('proxy');

const config = JSON.parse(process.argv[2] ?? '{}') as ProxyConfig;

interface Item {
  due: number;
  data: Buffer | null; // null = the source ended
}

/** Moves bytes from `from` to `to`, each chunk released `delayMs` after it arrived. */
function delayedPipe(from: net.Socket, to: net.Socket): void {
  let queue: Item[] = [];
  let head = 0;
  let held = 0;
  let timer: NodeJS.Timeout | null = null;
  let blocked = false; // waiting for 'drain' on `to`
  let paused = false;

  const schedule = (): void => {
    if (timer || blocked || head >= queue.length) return;
    const wait = Math.max(0, queue[head]!.due - performance.now());
    timer = setTimeout(flush, wait);
  };

  const flush = (): void => {
    timer = null;
    const t = performance.now();
    while (head < queue.length && queue[head]!.due <= t) {
      const item = queue[head++]!;
      if (item.data === null) {
        to.end();
        continue;
      }
      held -= item.data.length;
      if (!to.write(item.data)) {
        blocked = true;
        to.once('drain', () => {
          blocked = false;
          flush();
        });
        break;
      }
    }
    if (head > 1024 && head * 2 > queue.length) {
      queue = queue.slice(head);
      head = 0;
    }
    if (paused && held <= config.maxBufferedBytes / 2) {
      paused = false;
      from.resume();
    }
    schedule();
  };

  from.on('data', (data: Buffer) => {
    queue.push({ due: performance.now() + config.delayMs, data });
    held += data.length;
    if (!paused && held > config.maxBufferedBytes) {
      paused = true;
      from.pause();
    }
    schedule();
  });
  from.on('end', () => {
    queue.push({ due: performance.now() + config.delayMs, data: null });
    schedule();
  });
}

const server = net.createServer({ noDelay: true, allowHalfOpen: true }, (client) => {
  client.setNoDelay(true);
  const upstream = net.connect({ host: '127.0.0.1', port: config.targetPort, noDelay: true, allowHalfOpen: true });
  upstream.setNoDelay(true);
  const kill = (): void => {
    client.destroy();
    upstream.destroy();
  };
  // A graceful close travels as a delayed FIN (see delayedPipe); only failures cut both sides at once.
  client.on('error', kill);
  upstream.on('error', kill);
  delayedPipe(client, upstream);
  delayedPipe(upstream, client);
});
server.on('error', (err) => send({ type: 'error', message: `proxy: ${errorText(err)}` }));
server.listen({ host: '127.0.0.1', port: 0, backlog: 4096 }, () => {
  send({ type: 'listening', port: (server.address() as net.AddressInfo).port });
});
