/**
 * Application code run from inside the session: listeners and callbacks that throw, and listeners that call
 * back into the session (dial, close, Go Away) while it is in the middle of its own work. The session's state
 * must stay whole: ids unique, deadlines kept, channels refused or failed as documented, a throw surfacing
 * as uncaught (as from a socket) rather than as the session's failure.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import {
  ChannelRefusedError,
  LightSession,
  Session,
  SessionClosedError,
  lightClient,
  lightServer,
  multiplexedClient,
  multiplexedServer,
} from '../src/index.js';
import { runChild } from './support/child.js';
import { Flag, FrameType } from '../src/core/frame.js';
import type { Transport, TransportEvents } from '../src/core/transport.js';
import { FakeTransport } from './support/fake-transport.js';
import { frame, memoryPipe, pseudoRandomBytes, until, within } from './helpers.js';

test('callbacks that throw surface as uncaught and leave the session and its other channels working', async () => {
  const { code, stdout, stderr } = await runChild('throwing-application-callbacks');
  assert.equal(code, 0, stderr);
  const report = JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, Record<string, unknown>>;
  // A flowing channel's 'data' listener that throws. Before: the session took the throw for its own failure
  // (ERR_MUX_INTERNAL).
  // (JSON leaves out `closeError` while it is undefined.)
  assert.deepEqual(report.data, { got: { a: 'onetwo', b: 'onetwo' }, state: 'open', uncaught: ['data listener'] });
  // A write callback that throws, in a batch with another channel's writes. Before: the other channel's
  // completions were lost; later, the throwing write's own channel never ended (Node's Writable skipped the rest
  // of the write's completion, and end() never finished).
  assert.deepEqual(report.batch, {
    events: ['a ended at the peer', 'a finished', 'b ended at the peer', 'b finished', 'b written'],
    uncaught: ['write callback'],
  });
  // destroy() with a queued write whose callback throws. Before: it stopped half way (no 'close', `closed`
  // pending, the other channel left open).
  assert.deepEqual(report.destroy, {
    closed: 'settled',
    closeEvents: 1,
    channelCount: 0,
    bDestroyed: true,
    uncaught: 1,
  });
  // An error listener that throws in the open-timeout sweep. Before: the sweep stopped at the throw (B never
  // failed).
  const { failedAt, uncaught } = report.openTimeout as { failedAt: Record<string, number>; uncaught: number };
  assert.deepEqual(Object.keys(failedAt).sort(), ['A', 'B', 'C']);
  assert.ok(failedAt.B! < 250, `B failed at ${failedAt.B} ms (open timeout 100)`);
  assert.ok(failedAt.C! >= 290, `C failed at ${failedAt.C} ms (open timeout 300)`);
  assert.equal(uncaught, 1);
  // A 'timeout' listener that throws. Before: the timer was left unarmed (no 'timeout' after the next idle spell).
  assert.deepEqual(report.timeout, { timeouts: 2, uncaught: ['timeout listener'] });
  // An 'end' listener that throws on a kept channel. Before: it skipped the channel's own, which never failed it,
  // so no 'close' came and its end() was held for good.
  assert.deepEqual(report.keptEnd, {
    events: ['close', 'end', 'end callback'],
    destroyed: true,
    uncaught: ['end listener'],
  });
  // An empty write's callback that throws: an uncaught exception. Before: a rejected promise's.
  assert.deepEqual(report.emptyWrite, { uncaught: ['empty write callback'], rejected: [] });
  // A 'readable' listener that throws at the peer's FIN. Before: the session failed every channel
  // (ERR_MUX_INTERNAL).
  assert.deepEqual(report.readable, { state: 'open', bGot: 'bye', uncaught: ['readable listener'] });
});

for (const kind of ['Channel', 'light'] as const) {
  test(`${kind}: a 'channelOpen' listener that dials gets a channel of its own id, and both work`, async () => {
    const [a, b] = memoryPipe();
    const client =
      kind === 'Channel' ? multiplexedClient(a, { keepAliveInterval: 0 }) : lightClient(a, { keepAliveInterval: 0 });
    const server =
      kind === 'Channel' ? multiplexedServer(b, { keepAliveInterval: 0 }) : lightServer(b, { keepAliveInterval: 0 });
    try {
      server.on('channel', (channel) => {
        // Echo, whichever the kind.
        channel.on('data', (chunk: Uint8Array) => channel.write(chunk));
        channel.on('end', () => channel.end());
      });
      const companions: { id: number; end(data: Uint8Array): unknown }[] = [];
      let dialled = false;
      client.on('channelOpen', () => {
        if (dialled) return;
        dialled = true;
        companions.push(client.dial());
      });
      const main = client.dial();
      const companion = companions[0]!;
      assert.notEqual(main.id, companion.id);
      assert.equal(client.channelCount, 2);
      assert.equal(client.stats().outboundOpen, 2);
      const replies = [main, companion].map(
        (channel) =>
          new Promise<string>((resolve, reject) => {
            let text = '';
            const light = channel as unknown as { on(event: string, listener: (...args: never[]) => void): void };
            light.on('data', (chunk: Uint8Array) => (text += Buffer.from(chunk).toString()));
            light.on('end', () => resolve(text));
            light.on('error', reject);
          }),
      );
      main.end(Buffer.from('main'));
      companion.end(Buffer.from('companion'));
      assert.deepEqual(await within(Promise.all(replies), 5000, 'both echoes'), ['main', 'companion']);
      assert.equal(server.state, 'open');
    } finally {
      client.destroy();
      server.destroy();
    }
  });
}

test("a 'channelOpen' listener that destroys the session makes dial() throw rather than return a dead channel", () => {
  const [a] = memoryPipe();
  const client = multiplexedClient(a, { keepAliveInterval: 0 });
  client.on('channelOpen', () => client.destroy());
  assert.throws(() => client.dial(), SessionClosedError);
  assert.equal(client.channelCount, 0);
});

test("a 'channelOpen' listener that sends Go Away or closes refuses the peer's channel it runs for, at once", async () => {
  for (const call of ['goAway', 'close'] as const) {
    const [a, b] = memoryPipe();
    const client = multiplexedClient(a, { keepAliveInterval: 0 });
    const server = multiplexedServer(b, { keepAliveInterval: 0 });
    try {
      server.on('channelOpen', () => {
        if (call === 'goAway') server.goAway();
        else void server.close();
      });
      const accepted = server.accept().then(
        () => 'accepted',
        (error: unknown) => (error as Error).name,
      );
      const channel = client.dial({ openTimeout: 10_000 });
      channel.on('error', () => {});
      channel.write('hello');
      const started = performance.now();
      const error = await within(
        new Promise<Error>((resolve) => channel.on('error', resolve)),
        5000,
        `the refusal (${call})`,
      );
      assert.ok(error instanceof ChannelRefusedError, `${call}: ${error.name}: ${error.message}`);
      assert.ok(performance.now() - started < 1000, 'refused, not left to its open timeout');
      assert.equal(await accepted, 'SessionClosedError');
      assert.equal(server.channelCount, 0);
      if (call === 'goAway') {
        await assert.rejects(server.accept(), SessionClosedError);
        assert.equal(server.stats().refusalsOut, 1);
      }
    } finally {
      client.destroy();
      server.destroy();
    }
  }
});

test("a dial made while open timeouts are being failed (from 'channelClose') keeps the earlier deadlines", async () => {
  const [a, b] = memoryPipe();
  b.on('data', () => {}); // reads, never answers
  const client = multiplexedClient(a, { keepAliveInterval: 0 });
  try {
    const started = performance.now();
    let redialled = false;
    client.on('channelClose', () => {
      if (redialled) return;
      redialled = true;
      client.dial({ openTimeout: 4000 }).on('error', () => {});
    });
    client.dial({ openTimeout: 100 }).on('error', () => {});
    const later = client.dial({ openTimeout: 400 });
    const failed = new Promise<number>((resolve) => later.on('error', () => resolve(performance.now() - started)));
    const at = await within(failed, 3000, 'the 400 ms open timeout');
    assert.ok(at < 1000, `failed after ${Math.round(at)} ms`);
  } finally {
    client.destroy();
    b.destroy();
  }
});

/**
 * A transport that delivers at once, fed from a channel's listener: the session is in the middle of a chunk (a
 * large payload handed on, or the small payloads a read joined, handed on before a larger frame). What it
 * hands on then comes after the rest of that chunk, and an end or close it reports waits for both.
 */
for (const [kind, Kind] of [
  ['Channel', Session],
  ['LightChannel', LightSession],
] as const) {
  const D = FrameType.data;
  const W = FrameType.windowUpdate;
  /** A FakeTransport whose writes fail at once (`done` called within `write()`, as the contract allows) once told. */
  class FailingTransport extends FakeTransport {
    failing = false;
    override write(parts: Uint8Array[], done: (error?: Error | null) => void): boolean {
      if (!this.failing) return super.write(parts, done);
      done(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
      return false;
    }
  }
  /** A server session over a FakeTransport with channels 1 and 3 open, each recording what it reads. */
  async function twoChannels(
    readTimeSlice = 8,
  ): Promise<{
    transport: FailingTransport;
    session: Session | LightSession;
    got: Map<number, string[]>;
    channels: Map<number, { write(data: Uint8Array): unknown }>;
    onData: (id: number, listener: () => void) => void;
    failure: () => unknown;
  }> {
    const transport = new FailingTransport();
    const session = new Kind(transport, 'server', { keepAliveInterval: 0, readTimeSlice });
    const got = new Map<number, string[]>();
    const channels = new Map<number, { write(data: Uint8Array): unknown }>();
    const listeners = new Map<number, () => void>();
    let failure: unknown;
    session.closed.catch((error: unknown) => (failure = error));
    session.on(
      'channel',
      (channel: {
        id: number;
        write(data: Uint8Array): unknown;
        on(e: string, l: (...a: never[]) => void): unknown;
      }) => {
        got.set(channel.id, []);
        channels.set(channel.id, channel);
        channel.on('data', (data: Uint8Array) => {
          got.get(channel.id)!.push(Buffer.from(data).toString('latin1'));
          listeners.get(channel.id)?.();
        });
        channel.on('end', () => got.get(channel.id)!.push('<end>'));
        channel.on('error', (error: Error) => got.get(channel.id)!.push(`<${error.name}>`));
      },
    );
    transport.feed(Buffer.concat([frame(W, Flag.syn, 1, 0), frame(W, Flag.syn, 3, 0)]));
    await until(() => session.channelCount === 2, 2000, 'both channels open');
    await new Promise((resolve) => setImmediate(resolve)); // (a Channel flows, and hands on at once, from here)
    return {
      transport,
      session,
      got,
      channels,
      onData: (id, listener) => listeners.set(id, listener),
      failure: () => failure,
    };
  }

  test(`${kind}: a chunk fed from a listener of a large payload follows the rest of the chunk it was in`, async () => {
    const { transport, session, got, onData, failure } = await twoChannels();
    let fed = false;
    onData(1, () => {
      if (fed) return;
      fed = true;
      transport.feed(frame(D, 0, 3, Buffer.from('z')));
    });
    const big = pseudoRandomBytes(20_000, 3).toString('latin1');
    transport.feed(Buffer.concat([frame(D, 0, 1, Buffer.from(big, 'latin1')), frame(D, 0, 3, Buffer.from('y'))]));
    await until(() => got.get(3)!.join('').length >= 2, 2000, "channel 3's two bytes");
    assert.equal(got.get(3)!.join(''), 'yz');
    assert.equal(got.get(1)!.join(''), big);
    assert.equal(failure(), undefined);
    session.destroy();
  });

  test(`${kind}: a chunk fed while joined small payloads are handed on before a larger frame is that frame's payload`, async () => {
    const { transport, session, got, onData, failure } = await twoChannels();
    const big = pseudoRandomBytes(3000, 7);
    const whole = frame(D, 0, 1, big);
    let rest: Buffer | undefined = Buffer.concat([whole.subarray(12), frame(D, 0, 3, Buffer.from('z'))]);
    onData(3, () => {
      if (rest === undefined) return;
      const chunk = rest;
      rest = undefined;
      transport.feed(chunk);
    });
    // Small payloads (joined by the read), then the larger frame's header alone: its payload comes from the listener.
    transport.feed(
      Buffer.concat([frame(D, 0, 1, Buffer.from('a')), frame(D, 0, 3, Buffer.from('a')), whole.subarray(0, 12)]),
    );
    await until(() => got.get(3)!.join('') === 'az' || failure() !== undefined, 2000, "channel 3's z");
    assert.equal(failure(), undefined, String(failure()));
    assert.equal(got.get(1)!.join(''), `a${big.toString('latin1')}`);
    session.destroy();
  });

  test(`${kind}: an end the transport reports from a listener comes after the rest of the chunk`, async () => {
    const { transport, session, got, onData, failure } = await twoChannels();
    let ended = false;
    onData(1, () => {
      if (ended) return;
      ended = true;
      transport.peerEnd();
    });
    const big = pseudoRandomBytes(20_000, 5).toString('latin1');
    transport.feed(
      Buffer.concat([
        frame(D, 0, 1, Buffer.from(big, 'latin1')),
        frame(D, Flag.fin, 3, Buffer.from('y')),
        frame(D, Flag.fin, 1, 0),
      ]),
    );
    await until(() => session.state === 'closed', 2000, 'the session ended');
    await new Promise((resolve) => setTimeout(resolve, 20)); // (a Channel's own events come in later ticks)
    // Each channel read all the peer sent, and its FIN; then the transport's end failed what this side had not
    // ended (its writing).
    assert.deepEqual(got.get(3), ['y', '<end>', '<TransportClosedError>']);
    const one = got.get(1)!;
    assert.equal(one.slice(0, -2).join(''), big);
    assert.deepEqual(one.slice(-2), ['<end>', '<TransportClosedError>']);
    assert.ok(failure() instanceof Error);
  });

  for (const held of [false, true]) {
    test(`${kind}: a write that fails at once, made from a listener while ${held ? 'input held by the read time slice' : 'a chunk'} is decoded, fails the session only after the input before the failure was read`, async () => {
      const { transport, session, got, channels, onData } = await twoChannels(held ? 1 : 8);
      let seen = 0;
      onData(1, () => {
        seen++;
        if (held && seen === 1) {
          const end = performance.now() + 3;
          while (performance.now() < end); // spends this turn's 1 ms share: what comes next is held
          return;
        }
        if (seen !== (held ? 2 : 1)) return;
        transport.failing = true;
        channels.get(1)!.write(new Uint8Array(20_000)); // a large write goes to the transport at once, and fails
      });
      if (held) {
        transport.feed(frame(D, 0, 1, Buffer.alloc(2000, 0x5a)));
        transport.feed(Buffer.concat([frame(D, 0, 1, Buffer.alloc(2000, 0x41)), frame(D, 0, 3, Buffer.from('first'))]));
        transport.feed(frame(D, Flag.fin, 3, Buffer.from('-second')));
      } else {
        transport.feed(
          Buffer.concat([frame(D, 0, 1, Buffer.alloc(2000, 0x41)), frame(D, Flag.fin, 3, Buffer.from('first'))]),
        );
      }
      await until(() => session.state === 'closed', 2000, 'the session failed');
      await new Promise((resolve) => setTimeout(resolve, 20)); // (a Channel's own events come in later ticks)
      // Before: the rest of the chunk was dropped, or input held behind it decoded in its middle ('-second' alone).
      assert.deepEqual(got.get(3), [...(held ? ['first', '-second'] : ['first']), '<end>', '<TransportClosedError>']);
    });
  }
}

/** Two transports joined in this process: a write on one is delivered to the other within the `write()` call. */
function transportPairThatDeliversAtOnce(): [Transport, Transport] {
  const ends = [0, 1].map(() => ({ events: undefined as TransportEvents | undefined, closed: false }));
  const make = (own: (typeof ends)[number], other: (typeof ends)[number]): Transport => ({
    start: (events) => void (own.events = events),
    write(parts, done) {
      if (!other.closed) other.events!.data(Uint8Array.from(Buffer.concat(parts)));
      queueMicrotask(() => done(null));
      return true;
    },
    pause() {},
    resume() {},
    end: () => queueMicrotask(() => other.events?.end()),
    destroy() {
      if (own.closed) return;
      own.closed = other.closed = true;
      queueMicrotask(() => {
        own.events!.close();
        other.events!.close();
      });
    },
  });
  return [make(ends[0]!, ends[1]!), make(ends[1]!, ends[0]!)];
}

test("a Channel's write made from its 'data' listener while its own write is being handed on (the peer in this process answered at once) is not lost", async () => {
  const [a, b] = transportPairThatDeliversAtOnce();
  const client = new Session(a, 'client', { keepAliveInterval: 0 });
  const server = new Session(b, 'server', { keepAliveInterval: 0 });
  server.on('channel', (channel) => {
    channel.on('data', (data: Buffer) => channel.write(Buffer.from(data))); // echoes at once
    channel.on('end', () => channel.end());
  });
  try {
    const channel = client.dial();
    let echoed = 0;
    let wrote = false;
    let written: Error | null | undefined;
    channel.on('data', (data: Buffer) => {
      echoed += data.length;
      if (wrote) return;
      wrote = true;
      // Inside the echo of the first write, itself inside the channel's _writev of the two below. Before, Node
      // dropped this write (its buffer is reset after _writev returns): its callback never came, end() never
      // finished.
      channel.write(Buffer.alloc(20_000, 0x63), (error) => (written = error));
    });
    await new Promise((resolve) => setTimeout(resolve, 10)); // (open, and flowing: it hands on at once)
    channel.cork();
    channel.write(Buffer.alloc(20_000, 0x61));
    channel.write(Buffer.alloc(20_000, 0x62));
    channel.uncork();
    await until(() => echoed === 60_000, 2000, `every byte echoed (${echoed} so far)`);
    assert.equal(written, null);
    channel.end();
    await within(once(channel, 'end'), 2000, "the echo's end");
  } finally {
    client.destroy();
    server.destroy();
  }
});
