/**
 * The page side of the Chromium tests (test/browser/chromium.test.ts): bundled by esbuild with
 * `muxwire/web` into one script, it puts the scenarios on `window.scenarios`; the test calls them with
 * `page.evaluate`. The byte pattern comes from pattern.ts, which the Node side uses too. Everything here uses browser APIs only (WebSocket, Web Streams, crypto.subtle).
 */
import * as muxwire from '../../src/web/index.js';
import type { WebChannel, WebSession } from '../../src/web/index.js';
import { fillPattern } from './pattern.js';

async function readAll(channel: WebChannel): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = channel.readable.getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    chunks.push(value);
    total += value.length;
  }
  const all = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    all.set(chunk, offset);
    offset += chunk.length;
  }
  return all;
}

async function sha256(data: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', data as Uint8Array<ArrayBuffer>));
  return Array.from(digest, (byte) => byte.toString(16).padStart(2, '0')).join('');
}

/** A typed error as plain data (errors do not cross `page.evaluate`). */
function describeError(error: unknown): { name: string; code: string | undefined; muxError: boolean; reset: boolean } {
  return {
    name: (error as Error)?.name,
    code: (error as { code?: string })?.code,
    muxError: error instanceof muxwire.MuxError,
    reset: error instanceof muxwire.ChannelResetError,
  };
}

/** Things a scenario leaves for a later `page.evaluate` (a session, a held channel, pending calls). */
const kept: {
  session?: WebSession;
  held?: WebChannel;
  pending?: Promise<{ settled: number; errors: ReturnType<typeof describeError>[] }>;
} = {};

const options = { keepAliveInterval: 0 };

/** Two RTCPeerConnections in this page joined by one data channel (signalling by hand): its two ends. */
async function dataChannelPair(): Promise<{
  a: RTCDataChannel;
  b: RTCDataChannel;
  pa: RTCPeerConnection;
  pb: RTCPeerConnection;
  close: () => void;
}> {
  const pa = new RTCPeerConnection();
  const pb = new RTCPeerConnection();
  pa.onicecandidate = (event) => void (event.candidate && pb.addIceCandidate(event.candidate));
  pb.onicecandidate = (event) => void (event.candidate && pa.addIceCandidate(event.candidate));
  const a = pa.createDataChannel('mux');
  const accepted = new Promise<RTCDataChannel>((resolve) => (pb.ondatachannel = (event) => resolve(event.channel)));
  await pa.setLocalDescription(await pa.createOffer());
  await pb.setRemoteDescription(pa.localDescription!);
  await pb.setLocalDescription(await pb.createAnswer());
  await pa.setRemoteDescription(pb.localDescription!);
  const b = await accepted;
  return {
    a,
    b,
    pa,
    pb,
    close: () => {
      pa.close();
      pb.close();
    },
  };
}

export const scenarios = {
  /** Opens `count` channels at once; each sends 1 byte to 16 KiB of random data and checks the echo's SHA-256. */
  async echoMany(url: string, count: number): Promise<{ exact: number; bytes: number; ms: number }> {
    const session = await muxwire.connectWebSocket(url, options);
    const started = performance.now();
    let bytes = 0;
    const results = await Promise.all(
      Array.from({ length: count }, async (_, i) => {
        const data = crypto.getRandomValues(new Uint8Array(1 + ((i * 7919) % 16384)));
        bytes += data.length;
        const channel = session.dial();
        const writer = channel.writable.getWriter();
        const [received] = await Promise.all([readAll(channel), writer.write(data).then(() => writer.close())]);
        return (await sha256(data)) === (await sha256(received)) && received.length === data.length;
      }),
    );
    const ms = performance.now() - started;
    await session.close();
    return { exact: results.filter(Boolean).length, bytes, ms };
  },

  /**
   * Sends `mib` MiB on one channel to an echo server while reading the echo, and checks every byte of it
   * against the same pattern.
   */
  async bulkEcho(
    url: string,
    mib: number,
  ): Promise<{ sent: number; received: number; mismatches: number; ms: number }> {
    const session = await muxwire.connectWebSocket(url, options);
    const channel = session.dial();
    const total = mib * 1024 * 1024;
    const piece = 256 * 1024;
    const started = performance.now();
    const send = (async () => {
      const writer = channel.writable.getWriter();
      const state = { x: 0x9e3779b9 };
      for (let sent = 0; sent < total; sent += piece) {
        const chunk = new Uint8Array(piece);
        fillPattern(state, chunk);
        await writer.write(chunk);
      }
      await writer.close();
    })();
    let received = 0;
    let mismatches = 0;
    const expected = { x: 0x9e3779b9 };
    const reader = channel.readable.getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      const want = new Uint8Array(value.length);
      fillPattern(expected, want);
      for (let i = 0; i < value.length; i++) if (value[i] !== want[i]) mismatches++;
      received += value.length;
    }
    await send;
    const ms = performance.now() - started;
    await session.close();
    return { sent: total, received, mismatches, ms };
  },

  /** Accepts `count` channels the server pushes, by async iteration, and returns what each said. */
  async acceptPushed(url: string, count: number): Promise<{ texts: string[]; ids: number[] }> {
    const session = await muxwire.connectWebSocket(url, options);
    const texts: string[] = [];
    const ids: number[] = [];
    for await (const channel of session) {
      ids.push(channel.id);
      await channel.writable.close(); // nothing to say back: FIN, so the channel is over once read
      texts.push(new TextDecoder().decode(await readAll(channel)));
      if (texts.length === count) break;
    }
    await session.close();
    return { texts: texts.sort(), ids };
  },

  /**
   * Accepts the channel the server pushes and does not read it (the test measures the server meanwhile): waits
   * (up to 20 s) until `expected` bytes are held, then 200 ms more, in which nothing beyond them may come.
   */
  async holdPushed(url: string, expected: number): Promise<{ buffered: number }> {
    const session = await muxwire.connectWebSocket(url, options);
    kept.session = session;
    kept.held = await session.accept();
    const deadline = performance.now() + 20_000;
    while (session.bufferedBytes < expected && performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
    return { buffered: session.bufferedBytes };
  },

  /** Reads the held channel to its end: returns the byte count and the mismatches against the pattern. */
  async readHeld(): Promise<{ received: number; mismatches: number }> {
    const expected = { x: 12345 };
    let received = 0;
    let mismatches = 0;
    const reader = kept.held!.readable.getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      const want = new Uint8Array(value.length);
      fillPattern(expected, want);
      for (let i = 0; i < value.length; i++) if (value[i] !== want[i]) mismatches++;
      received += value.length;
    }
    await kept.held!.writable.close();
    await kept.session!.close();
    return { received, mismatches };
  },

  /**
   * Resets both ways: the server resets the first channel (the page's read and write fail), the page resets
   * the second (the test checks the server's error).
   */
  async resets(
    url: string,
  ): Promise<{
    read: ReturnType<typeof describeError>;
    write: ReturnType<typeof describeError>;
    failure: ReturnType<typeof describeError>;
  }> {
    const session = await muxwire.connectWebSocket(url, options);
    const first = session.dial();
    const writer = first.writable.getWriter();
    await writer.write(new Uint8Array([1])); // 1: the server answers one byte, then resets this one
    const reader = first.readable.getReader();
    const answer = await reader.read();
    if (answer.value?.[0] !== 1) throw new Error('the server did not answer');
    const read = await reader.read().then(
      () => undefined,
      (error: unknown) => error,
    );
    const write = await writer.write(new Uint8Array([9])).then(
      () => undefined,
      (error: unknown) => error,
    );
    const second = session.dial();
    const secondWriter = second.writable.getWriter();
    await secondWriter.write(new Uint8Array([2])); // 2: the server waits for the page's reset
    await new Promise((resolve) => setTimeout(resolve, 50));
    second.reset('the page gave up');
    await new Promise((resolve) => setTimeout(resolve, 50));
    await session.close();
    return { read: describeError(read), write: describeError(write), failure: describeError(first.failure) };
  },

  /** Opens `count` echoed channels and leaves them open, with a read, an accept and a ping pending. */
  async openAndWait(url: string, count: number, keepAliveTimeout: number): Promise<number> {
    const session = await muxwire.connectWebSocket(url, { keepAliveInterval: 1000, keepAliveTimeout });
    kept.session = session;
    const reads: Promise<unknown>[] = [];
    for (let i = 0; i < count; i++) {
      const channel = session.dial();
      const writer = channel.writable.getWriter();
      await writer.write(new Uint8Array([i & 0xff]));
      const reader = channel.readable.getReader();
      await reader.read(); // the echo: the channel is established
      reads.push(reader.read());
      writer.releaseLock();
    }
    reads.push(session.accept());
    reads.push(session.closed);
    kept.pending = Promise.allSettled(reads).then((results) => ({
      settled: results.length,
      errors: results.map((result) => describeError(result.status === 'rejected' ? result.reason : undefined)),
    }));
    return session.channelCount;
  },

  /**
   * Against a non-muxwire server (Go hashicorp/yamux behind a WebSocket): `count` channels echoed exactly
   * (SHA-256), and the channel the server opens accepted, read, and echoed back to it.
   */
  async againstGo(url: string, count: number): Promise<{ exact: number; greeting: string }> {
    const session = await muxwire.connectWebSocket(url, options);
    const pushed = (async () => {
      const channel = await session.accept();
      // One line, echoed, then FIN (the Go side keeps its half open until it has the echo).
      const reader = channel.readable.getReader();
      let text = '';
      while (!text.endsWith('\n')) {
        const { value, done } = await reader.read();
        if (done) throw new Error('the Go side ended before its line');
        text += new TextDecoder().decode(value);
      }
      const writer = channel.writable.getWriter();
      await writer.write(new TextEncoder().encode(text));
      await writer.close();
      await reader.read(); // the Go side's FIN
      return text.trim();
    })();
    const results = await Promise.all(
      Array.from({ length: count }, async (_, i) => {
        const data = crypto.getRandomValues(new Uint8Array(1 + ((i * 7919) % 65536)));
        const channel = session.dial();
        const writer = channel.writable.getWriter();
        const [received] = await Promise.all([readAll(channel), writer.write(data).then(() => writer.close())]);
        return (await sha256(data)) === (await sha256(received));
      }),
    );
    const greeting = await pushed;
    await session.close();
    return { exact: results.filter(Boolean).length, greeting };
  },

  /** Connects and echoes one message on one channel; what the page gets: the echo, or the error, as data. */
  async echoOnce(url: string): Promise<{ echoed: string } | { error: ReturnType<typeof describeError> }> {
    let session: WebSession;
    try {
      session = await muxwire.connectWebSocket(url, options);
    } catch (error) {
      return { error: describeError(error) };
    }
    const channel = session.dial();
    const writer = channel.writable.getWriter();
    await writer.write(new TextEncoder().encode('from ' + location.origin));
    await writer.close();
    const echoed = new TextDecoder().decode(await readAll(channel));
    await session.close();
    return { echoed };
  },

  /**
   * Two RTCPeerConnections in this page joined by one data channel (signalling by hand), a session over each
   * end (`dataChannelTransport`) with frames of up to 1 MiB: `count` channels dialled by both ends, each echoed
   * by the other end and checked by SHA-256; `bulk` bytes each way on one channel; then one end's connection
   * closes. Reports the largest message either end sent, against the default `maxMessageSize` (64 KiB).
   */
  async dataChannels(
    count: number,
    bulk: number,
  ): Promise<{
    exact: number;
    bulkExact: boolean;
    largestMessage: number;
    sctpMaxMessageSize: number;
    closedByPeer: ReturnType<typeof describeError> | null;
    closedHere: ReturnType<typeof describeError> | null;
  }> {
    const { a, b, pa, pb } = await dataChannelPair();
    let largestMessage = 0;
    for (const end of [a, b]) {
      // (on the instance: the transport calls `send` through the channel, as a page's code would)
      const send = end.send.bind(end) as (data: ArrayBufferView<ArrayBuffer>) => void;
      Object.defineProperty(end, 'send', {
        value: (data: ArrayBufferView<ArrayBuffer>) => {
          largestMessage = Math.max(largestMessage, data.byteLength);
          send(data);
        },
      });
    }
    // `a` may still be connecting: the transport waits for it to open.
    const frames = { keepAliveInterval: 0, maxFrameSize: 1024 * 1024, initialWindow: 4 * 1024 * 1024 };
    const sa = new muxwire.WebSession(muxwire.dataChannelTransport(a), 'client', frames);
    const sb = new muxwire.WebSession(muxwire.dataChannelTransport(b), 'server', frames);
    for (const session of [sa, sb]) {
      void (async () => {
        for await (const channel of session) void channel.readable.pipeTo(channel.writable).catch(() => {});
      })();
    }
    const echo = async (session: WebSession, data: Uint8Array): Promise<boolean> => {
      const channel = session.dial();
      const writing = (async () => {
        const writer = channel.writable.getWriter();
        for (let at = 0; at < data.length; at += 256 * 1024) await writer.write(data.slice(at, at + 256 * 1024));
        await writer.close();
      })();
      const [echoed] = await Promise.all([readAll(channel), writing]);
      return (await sha256(echoed)) === (await sha256(data));
    };
    const results = await Promise.all(
      Array.from({ length: count }, (_, i) => {
        const data = new Uint8Array(1 + ((i * 7919) % 4096));
        crypto.getRandomValues(data);
        return echo(i % 2 === 0 ? sa : sb, data);
      }),
    );
    const big = new Uint8Array(bulk);
    fillPattern({ x: 777 }, big);
    const bulkResults = await Promise.all([echo(sa, big), echo(sb, big)]);
    const sctpMaxMessageSize = pa.sctp?.maxMessageSize ?? 0;
    const outcome = (session: WebSession) =>
      session.closed.then(
        () => null,
        (error: unknown) => describeError(error),
      );
    // One end's connection goes: the other end's session ends with a typed error or cleanly, never hangs.
    const dead = sa.dial();
    void dead.readable
      .getReader()
      .read()
      .catch(() => {});
    pb.close();
    const timeout = new Promise<'hang'>((resolve) => setTimeout(() => resolve('hang'), 10_000));
    const closedByPeer = await Promise.race([outcome(sa), timeout]);
    const closedHere = await Promise.race([outcome(sb), timeout]);
    pa.close();
    if (closedByPeer === 'hang' || closedHere === 'hang') throw new Error('a session did not end within 10 s');
    return {
      exact: results.filter(Boolean).length,
      bulkExact: bulkResults.every(Boolean),
      largestMessage,
      sctpMaxMessageSize,
      closedByPeer,
      closedHere,
    };
  },

  /**
   * One channel over a data channel writing `bytes` in one write, with frames of `frame` bytes, windows of
   * `window` and the transport's `highWaterMark`: Chromium's `send()` throws past 16 MiB queued. Reports whether
   * all arrived exactly and the most the data channel queued.
   */
  async dataChannelQueue(
    frame: number,
    window: number,
    bytes: number,
    highWaterMark?: number,
  ): Promise<{ exact: boolean; wrote: string; mostQueued: number }> {
    const { a, b, close } = await dataChannelPair();
    let mostQueued = 0;
    const send = a.send.bind(a) as (data: ArrayBufferView<ArrayBuffer>) => void;
    Object.defineProperty(a, 'send', {
      value: (data: ArrayBufferView<ArrayBuffer>) => {
        send(data);
        mostQueued = Math.max(mostQueued, a.bufferedAmount);
      },
    });
    const options = { keepAliveInterval: 0, maxFrameSize: frame, initialWindow: window, maxWindow: window };
    const sa = new muxwire.WebSession(muxwire.dataChannelTransport(a, { highWaterMark }), 'client', options);
    const sb = new muxwire.WebSession(muxwire.dataChannelTransport(b), 'server', options);
    const data = new Uint8Array(bytes);
    fillPattern({ x: 4242 }, data);
    const received = sb.accept().then((channel) => readAll(channel));
    const writer = sa.dial().writable.getWriter();
    const wrote = await writer.write(data).then(
      () => 'ok',
      (error: unknown) => (error as Error).message,
    );
    void writer.close().catch(() => {});
    let timer: ReturnType<typeof setTimeout> | undefined;
    const echoed = await Promise.race([
      received.catch(() => new Uint8Array(0)),
      new Promise<Uint8Array>((resolve) => (timer = setTimeout(() => resolve(new Uint8Array(0)), 60_000))),
    ]);
    clearTimeout(timer);
    const exact = echoed.length === data.length && (await sha256(echoed)) === (await sha256(data));
    sa.destroy();
    sb.destroy();
    close();
    return { exact, wrote, mostQueued };
  },

  /** Waits for what `openAndWait` left pending. */
  pendingSettled(): Promise<{ settled: number; errors: ReturnType<typeof describeError>[] }> {
    return kept.pending!;
  },
};

declare global {
  interface Window {
    scenarios: typeof scenarios;
    muxwire: typeof muxwire;
  }
}

// The Node test runner loads every file under dist/test/ too, where there is no window: nothing to do there.
if (typeof window !== 'undefined') {
  window.scenarios = scenarios;
  window.muxwire = muxwire;
}
