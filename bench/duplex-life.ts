// Issue 16's in-process check of what a Node Duplex channel costs, without sockets or protocol: CPU time per
// channel for N channels made cold in a fresh process, either only constructed or living a short channel's
// whole life (write 5 bytes, receive 5 bytes, receive the end, end, until 'close'). One variant per process
// (`node dist/bench/duplex-life.js <variant>`, or no argument for all, each in its own child), so every
// figure is cold, as in open-10k's first round.
import { execFileSync } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { Duplex, type DuplexOptions } from 'node:stream';
import { fileURLToPath } from 'node:url';

const N = 20_000;
const HELLO = Buffer.from('hello');
type Callback = (error?: Error | null) => void;

/** As the plain floor's channel: its own options object and a 'close' listener per channel. */
class PlainChannel extends Duplex {
  constructor() {
    super({ allowHalfOpen: true, highWaterMark: 64 * 1024 });
    this.once('close', () => {});
  }
  override _read(): void {}
  override _write(_chunk: Buffer, _encoding: BufferEncoding, callback: Callback): void {
    callback();
  }
  override _final(callback: Callback): void {
    callback();
  }
}

const LEAN: DuplexOptions = { allowHalfOpen: true, highWaterMark: 64 * 1024 };
/** As floor-lean: one shared options object, nothing of its own per channel. */
class LeanChannel extends Duplex {
  constructor() {
    super(LEAN);
  }
  override _read(): void {}
  override _write(_chunk: Buffer, _encoding: BufferEncoding, callback: Callback): void {
    callback();
  }
  override _final(callback: Callback): void {
    callback();
  }
}

function life(make: () => Duplex): Promise<void> {
  return new Promise((resolve) => {
    let closed = 0;
    for (let i = 0; i < N; i++) {
      const ch = make();
      ch.on('data', () => ch.end());
      ch.on('close', () => {
        if (++closed === N) resolve();
      });
      ch.on('error', () => {});
      ch.write(HELLO);
      ch.push(HELLO);
      ch.push(null);
    }
  });
}

function construct(make: () => object): Promise<void> {
  for (let i = 0; i < N; i++) make();
  return Promise.resolve();
}

const VARIANTS: Record<string, () => Promise<void>> = {
  'construct-plain': () => construct(() => new PlainChannel()),
  'construct-lean': () => construct(() => new LeanChannel()),
  'construct-emitter': () => construct(() => new EventEmitter()),
  'life-plain': () => life(() => new PlainChannel()),
  'life-lean': () => life(() => new LeanChannel()),
};

const which = process.argv[2];
if (which === undefined) {
  for (const name of Object.keys(VARIANTS)) {
    process.stdout.write(execFileSync(process.execPath, [fileURLToPath(import.meta.url), name], { encoding: 'utf8' }));
  }
} else {
  const run = VARIANTS[which];
  if (run === undefined) throw new Error(`unknown variant '${which}' (known: ${Object.keys(VARIANTS).join(', ')})`);
  const before = process.cpuUsage();
  await run();
  const used = process.cpuUsage(before);
  console.log(`${which}: ${((used.user + used.system) / N).toFixed(2)} µs CPU per channel (${N} channels, cold)`);
}
