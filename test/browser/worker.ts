/**
 * A module Web Worker for the Chromium tests (test/browser/chromium.test.ts): bundled by esbuild as an ES
 * module with `muxwire/web`, it waits for `{ url, count, pushed }`, connects over a WebSocket from the
 * worker, echoes `count` channels it dials (SHA-256 of each checked), accepts the `pushed` channels the server
 * opens, and posts the outcome back. Nothing here may use the DOM: a worker has none.
 */
import { connectWebSocket } from '../../src/web/index.js';

declare const self: {
  onmessage: ((event: { data: WorkerRequest }) => void) | null;
  postMessage(message: unknown): void;
};

/** What the test posts to the worker. */
export interface WorkerRequest {
  url: string;
  count: number;
  pushed: number;
}

/** What the worker posts back. */
export interface WorkerResult {
  inWorker: boolean;
  exact: number;
  pushedTexts: string[];
  error?: string;
}

async function hex(data: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', data as Uint8Array<ArrayBuffer>));
  return Array.from(digest, (byte) => byte.toString(16).padStart(2, '0')).join('');
}

async function readAll(readable: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
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

async function run({ url, count, pushed }: WorkerRequest): Promise<WorkerResult> {
  const session = await connectWebSocket(url, { keepAliveInterval: 0 });
  const pushedTexts: string[] = [];
  const accepting = (async () => {
    for (let i = 0; i < pushed; i++) {
      const channel = await session.accept({ signal: AbortSignal.timeout(10_000) });
      pushedTexts.push(new TextDecoder().decode(await readAll(channel.readable)));
      await channel.writable.close();
    }
  })();
  const outcomes = await Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const data = crypto.getRandomValues(new Uint8Array(1 + ((i * 4099) % 60_000)));
      const channel = session.dial();
      const writer = channel.writable.getWriter();
      const [echo] = await Promise.all([readAll(channel.readable), writer.write(data).then(() => writer.close())]);
      return (await hex(echo)) === (await hex(data));
    }),
  );
  await accepting;
  await session.close();
  return {
    // A module worker's global scope: no document, and `WorkerGlobalScope` exists.
    inWorker:
      typeof (globalThis as { document?: unknown }).document === 'undefined' &&
      typeof (globalThis as { WorkerGlobalScope?: unknown }).WorkerGlobalScope === 'function',
    exact: outcomes.filter(Boolean).length,
    pushedTexts: pushedTexts.sort(),
  };
}

// The Node test runner loads every file under dist/test/ too, where there is no worker scope: nothing to do there.
if (typeof self !== 'undefined') {
  self.onmessage = (event) => {
    run(event.data).then(
      (result) => self.postMessage(result),
      (error: unknown) => self.postMessage({ inWorker: false, exact: 0, pushedTexts: [], error: String(error) }),
    );
  };
}
