// Child process: the server side of one run. Listens on 127.0.0.1 (any port), hands every accepted
// TCP connection to the implementation, and serves each inbound channel: ECHO (default) or SINK
// (preamble first byte MAGIC[0]; counts, checks stamps, acknowledges). See protocol.ts.
import net from 'node:net';
import { findImpl } from './impl/index.js';
import type { Channel, AdapterOptions, ServerSession } from './impl/types.js';
import {
  ACK_FINAL,
  ACK_PROGRESS,
  BLOCK,
  MAGIC,
  COUNT_OK,
  OP_COUNT,
  PREAMBLE_LENGTH,
  UNBOUNDED,
  StampChecker,
  decodeCountPreamble,
  decodePreamble,
  encodeAck,
  preambleOp,
} from './protocol.js';
import {
  cpuSince,
  errorText,
  measureMemory,
  reportCrashes,
  send,
  type CpuSample,
  type MemorySample,
  type RunnerMessage,
  type ServerConfig,
  type ServerStats,
} from './ipc.js';

reportCrashes('server');

const config = JSON.parse(process.argv[2] ?? '{}') as ServerConfig;

const stats: ServerStats = {
  connections: 0,
  channels: 0,
  echoChannels: 0,
  sinkChannels: 0,
  channelErrors: 0,
  sinkStampErrors: 0,
};

// Shared listeners (no closure per channel, so the idle workload measures the implementation).
function onChannelError(err: Error): void {
  stats.channelErrors++;
  stats.lastChannelError = errorText(err);
}

function resumeThis(this: Channel): void {
  this.resume();
}

function onEchoData(this: Channel, chunk: Buffer): void {
  if (!this.write(chunk)) {
    this.pause();
    this.once('drain', resumeThis);
  }
}

function onEchoEnd(this: Channel): void {
  this.end();
}

function onFirstData(this: Channel, chunk: Buffer): void {
  if (chunk.length === 0) return;
  this.off('data', onFirstData);
  if (chunk[0] === MAGIC[0]) {
    stats.sinkChannels++;
    startSink(this, chunk);
    return;
  }
  stats.echoChannels++;
  this.on('data', onEchoData);
  this.on('end', onEchoEnd);
  onEchoData.call(this, chunk);
}

function startSink(ch: Channel, first: Buffer): void {
  let head: Buffer | null = first;
  let checker: StampChecker | null = null;
  let total = 0;
  let ackEvery = 0;
  let nextAck = 0;
  let done = false;
  const onData = (chunk: Buffer): void => {
    if (!checker) {
      head = head === chunk ? chunk : Buffer.concat([head!, chunk]);
      if (head.length < PREAMBLE_LENGTH) return;
      if (preambleOp(head) === OP_COUNT) {
        ch.off('data', onData);
        startCount(ch, decodeCountPreamble(head), head.subarray(PREAMBLE_LENGTH));
        return;
      }
      const p = decodePreamble(head);
      checker = new StampChecker(p.tag);
      total = p.blocks === UNBOUNDED ? Infinity : p.blocks * BLOCK;
      ackEvery = p.ackEveryBlocks * BLOCK;
      nextAck = ackEvery || Infinity;
      chunk = head.subarray(PREAMBLE_LENGTH);
      head = null;
      if (chunk.length === 0) return;
    }
    if (done) {
      stats.channelErrors++;
      stats.lastChannelError = `sink received ${chunk.length} bytes after its total`;
      return;
    }
    const before = checker.errors;
    checker.push(chunk);
    stats.sinkStampErrors += checker.errors - before;
    const received = checker.received;
    if (received >= total) {
      done = true;
      ch.write(
        encodeAck({ kind: ACK_FINAL, bytes: received, stampErrors: checker.errors, stampsChecked: checker.checked }),
      );
      ch.end();
    } else if (received >= nextAck) {
      while (nextAck <= received) nextAck += ackEvery;
      ch.write(
        encodeAck({ kind: ACK_PROGRESS, bytes: received, stampErrors: checker.errors, stampsChecked: checker.checked }),
      );
    }
  };
  ch.on('data', onData);
  onData(first);
}

/**
 * bulk-cold's server, as a user's first benchmark writes it: count the bytes in a 'data' listener, answer
 * "ok" once all arrived. (The count is still checked: more bytes than announced is a channel error.)
 */
const COUNT_OK_BYTES = Buffer.from(COUNT_OK, 'latin1');

function startCount(ch: Channel, total: number, first: Buffer): void {
  let received = 0;
  const onData = (chunk: Buffer): void => {
    received += chunk.length;
    if (received === total) ch.end(COUNT_OK_BYTES);
    else if (received > total) {
      stats.channelErrors++;
      stats.lastChannelError = `count channel received ${received} of ${total} bytes`;
    }
  };
  ch.on('data', onData);
  if (first.length > 0) onData(first);
  else if (total === 0) ch.end(COUNT_OK_BYTES);
}

function onChannel(ch: Channel): void {
  stats.channels++;
  ch.on('error', onChannelError);
  ch.on('data', onFirstData);
}

async function main(): Promise<void> {
  const entry = findImpl(config.impl);
  const impl = await entry.load();
  // A library the adapter imports in the background (muxwire) is loaded before the port is announced: the
  // client's measured part could otherwise overlap the server's parsing and compiling of it.
  await impl.ready?.();
  const opts: AdapterOptions = { maxChannels: config.maxChannels };
  const hooks = { onError: (err: Error) => send({ type: 'error', message: `server session: ${errorText(err)}` }) };
  const sessions: ServerSession[] = [];
  const base: MemorySample = await measureMemory();

  const server = net.createServer({ noDelay: config.noDelay }, (socket) => {
    stats.connections++;
    if (config.noDelay) socket.setNoDelay(true);
    if (impl.transport === 'shared') socket.on('error', (err) => hooks.onError(err));
    sessions.push(impl.server(socket, onChannel, opts, hooks));
    if (impl.transport === 'per-channel') sessions.pop(); // nothing to keep per socket
  });
  server.on('error', (err) => send({ type: 'error', message: `server listen: ${errorText(err)}` }));
  server.listen({ host: '127.0.0.1', port: 0, backlog: 4096 }, () => {
    const addr = server.address() as net.AddressInfo;
    send({ type: 'listening', port: addr.port });
  });

  // The CPU time of the client's measured part: the runner passes the client's marks on as they come.
  let cpuStart: CpuSample | undefined;
  let cpu: CpuSample | undefined;
  process.on('message', (msg: RunnerMessage) => {
    if (msg.type === 'cpu-mark') {
      if (msg.phase === 'start') cpuStart = cpuSince();
      else if (cpuStart) cpu = cpuSince(cpuStart);
      return;
    }
    if (msg.type !== 'stats') return;
    void (async () => {
      const out: ServerStats = { ...stats, ...(cpu ? { cpu } : {}) };
      if (msg.measure) out.memory = { base, now: await measureMemory() };
      send({ type: 'stats', stats: out });
    })();
  });
}

main().catch((err: unknown) => {
  send({ type: 'error', message: `server: ${errorText(err)}` });
  setTimeout(() => process.exit(1), 50).unref();
});
