/**
 * Application code run from inside the session: listeners and callbacks that throw, and listeners that call
 * back into the session (dial, close, Go Away) while it is in the middle of its own work. The session's state
 * must stay whole: ids unique, deadlines kept, channels refused or failed as documented, a throw surfacing
 * as uncaught (as from a socket) rather than as the session's failure.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
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
import { FakeTransport } from './support/fake-transport.js';
import { frame, memoryPipe, pseudoRandomBytes, until, within } from './helpers.js';

test('callbacks that throw surface as uncaught and leave the session and its other channels working', async () => {
  const { code, stdout, stderr } = await runChild('throwing-application-callbacks');
  assert.equal(code, 0, stderr);
  const report = JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, Record<string, unknown>>;
  // A flowing channel's 'data' listener: the session took the throw for its own failure (ERR_MUX_INTERNAL).
  // (JSON leaves out `closeError` while it is undefined.)
  assert.deepEqual(report.data, { got: { a: 'onetwo', b: 'onetwo' }, state: 'open', uncaught: ['data listener'] });
  // The other channel's completions in the same batch were lost.
  assert.deepEqual(report.batch, { events: ['b written', 'b finished'], uncaught: ['write callback'] });
  // destroy() stopped half way: no 'close', `closed` pending, the other channel left open.
  assert.deepEqual(report.destroy, {
    closed: 'settled',
    closeEvents: 1,
    channelCount: 0,
    bDestroyed: true,
    uncaught: 1,
  });
  // The open-timeout sweep stopped at the throw: B never failed.
  const { failedAt, uncaught } = report.openTimeout as { failedAt: Record<string, number>; uncaught: number };
  assert.deepEqual(Object.keys(failedAt).sort(), ['A', 'B', 'C']);
  assert.ok(failedAt.B! < 250, `B failed at ${failedAt.B} ms (open timeout 100)`);
  assert.ok(failedAt.C! >= 290, `C failed at ${failedAt.C} ms (open timeout 300)`);
  assert.equal(uncaught, 1);
  // A 'timeout' listener: the timer was left unarmed, so no 'timeout' came after the next idle spell.
  assert.deepEqual(report.timeout, { timeouts: 2, uncaught: ['timeout listener'] });
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
  /** A server session over a FakeTransport with channels 1 and 3 open, each recording what it reads. */
  async function twoChannels(): Promise<{
    transport: FakeTransport;
    session: Session | LightSession;
    got: Map<number, string[]>;
    onData: (id: number, listener: () => void) => void;
    failure: () => unknown;
  }> {
    const transport = new FakeTransport();
    const session = new Kind(transport, 'server', { keepAliveInterval: 0 });
    const got = new Map<number, string[]>();
    const listeners = new Map<number, () => void>();
    let failure: unknown;
    session.closed.catch((error: unknown) => (failure = error));
    session.on('channel', (channel: { id: number; on(e: string, l: (...a: never[]) => void): unknown }) => {
      got.set(channel.id, []);
      channel.on('data', (data: Uint8Array) => {
        got.get(channel.id)!.push(Buffer.from(data).toString('latin1'));
        listeners.get(channel.id)?.();
      });
      channel.on('end', () => got.get(channel.id)!.push('<end>'));
      channel.on('error', (error: Error) => got.get(channel.id)!.push(`<${error.name}>`));
    });
    transport.feed(Buffer.concat([frame(W, Flag.syn, 1, 0), frame(W, Flag.syn, 3, 0)]));
    await until(() => session.channelCount === 2, 2000, 'both channels open');
    await new Promise((resolve) => setImmediate(resolve)); // (a Channel flows, and hands on at once, from here)
    return { transport, session, got, onData: (id, listener) => listeners.set(id, listener), failure: () => failure };
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
}
