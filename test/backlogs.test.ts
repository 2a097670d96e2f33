/**
 * The session's two backlogs when channels leave them early: dials waiting for the ACK backlog (`ackBacklog`)
 * that are destroyed, aborted or time out while the peer acknowledges nothing, and channels waiting in the
 * accept queue (`acceptBacklog`) that the peer resets before the application takes them. Neither may hold
 * memory for the channels that left, nor count them against its bound.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Duplex } from 'node:stream';
import {
  type Channel,
  ChannelRefusedError,
  type MuxError,
  lightClient,
  lightServer,
  multiplexedClient,
  multiplexedServer,
} from '../src/index.js';
import { Flag, FrameType } from '../src/core/frame.js';
import { collectGarbage, settledMemory } from './support/resources.js';
import { RawPeer, frame, memoryPipe, until, within } from './helpers.js';

const noop = (): void => {};
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** The ids of the SYNs a raw peer has read, in order (Pings carry the flag too, and are left out). */
function synsSeen(peer: RawPeer): number[] {
  return peer.frames.filter((f) => f.type !== FrameType.ping && (f.flags & Flag.syn) !== 0).map((f) => f.streamId);
}

/** Collects garbage over a few turns (a WeakRef's target lives until the end of the job that made it). */
async function collected(refs: WeakRef<object>[]): Promise<number> {
  for (let i = 0; i < 5; i++) {
    await turn();
    collectGarbage();
  }
  return refs.filter((ref) => ref.deref() === undefined).length;
}

for (const kind of ['node', 'light'] as const) {
  for (const how of ['destroy', 'signal', 'timeout'] as const) {
    test(`${kind} dials given up (${how}) while the peer acknowledges nothing are not kept in the ACK backlog`, async () => {
      const [a, b] = memoryPipe();
      const options = { keepAliveInterval: 0, ackBacklog: 16, openTimeout: 0 };
      // The peer's application never accepts: its accept queue holds every SYN unacknowledged.
      const client = kind === 'node' ? multiplexedClient(a, options) : lightClient(a, options);
      const server =
        kind === 'node' ? multiplexedServer(b, { keepAliveInterval: 0 }) : lightServer(b, { keepAliveInterval: 0 });
      try {
        const stuck: { on(event: string, listener: () => void): unknown }[] = [];
        for (let i = 0; i < 16; i++) stuck.push(client.dial());
        for (const channel of stuck) channel.on('error', noop);
        await until(() => server.stats().channelsOpen === 16, 5000, 'the 16 SYNs at the peer');
        const refs: WeakRef<object>[] = [];
        const given = 3000;
        for (let round = 0; round < given / 100; round++) {
          const controller = new AbortController();
          for (let i = 0; i < 100; i++) {
            const channel = client.dial(
              how === 'signal' ? { signal: controller.signal } : how === 'timeout' ? { openTimeout: 1 } : {},
            ) as Channel;
            channel.on('error', noop);
            refs.push(new WeakRef(channel));
            if (how === 'destroy') channel.destroy();
          }
          if (how === 'signal') controller.abort(new Error('given up'));
          if (how === 'timeout') await new Promise((resolve) => setTimeout(resolve, 5));
        }
        await until(() => client.stats().channelsOpen === 16, 10_000, 'the dials given up left the session');
        const gone = await collected(refs);
        // Before: every one was held by the backlog until the peer acknowledged something (0 of 3,000).
        assert.ok(gone >= given / 2, `${gone} of ${given} dials given up were collected`);
      } finally {
        client.destroy();
        server.destroy();
      }
    });
  }
}

test('a dial that times out while it waits for the ACK backlog says its SYN never left; one sent says the peer did not acknowledge it', async () => {
  const [a, b] = memoryPipe();
  const client = multiplexedClient(a, { keepAliveInterval: 0, ackBacklog: 2 });
  // The peer's application never accepts: its accept queue holds every SYN unacknowledged.
  const server = multiplexedServer(b, { keepAliveInterval: 0 });
  try {
    const failed = (channel: Channel): Promise<MuxError> =>
      new Promise<MuxError>((resolve) => channel.once('error', resolve));
    const first = failed(client.dial({ openTimeout: 200 }));
    const held = client.dial({ openTimeout: 0 }); // holds the second place for good
    held.on('error', noop);
    const waiting = failed(client.dial({ openTimeout: 100 }));
    const third = await within(waiting, 5000, "the waiting dial's open timeout");
    assert.equal(third.code, 'ERR_MUX_OPEN_TIMEOUT');
    // Before: "the peer did not acknowledge channel 5", of a SYN it was never sent.
    assert.match(
      third.message,
      /channel 5 was not opened .* waited for a place in the ACK backlog \(ackBacklog: 2\) and never left, so the peer never heard of it/,
    );
    assert.equal(server.stats().channelsOpen, 2, 'only two SYNs reached the peer');
    const sent = await within(first, 5000, "the first dial's open timeout");
    assert.match(sent.message, /the peer did not acknowledge channel 1 within its open timeout/);
  } finally {
    client.destroy();
    server.destroy();
  }
});

for (const [where, sessionTimeout, dialTimeout] of [
  ["the session's", 200, undefined],
  ["the dials' own, the session's 0", 0, 200],
] as const) {
  test(`dials that time out together (${where} open timeout) while the peer acknowledges nothing send no SYN from the backlog: each failure freed a place for the next one due`, async () => {
    const [a, b] = memoryPipe();
    const client = multiplexedClient(a, { keepAliveInterval: 0, ackBacklog: 4, openTimeout: sessionTimeout });
    // A peer whose application is stalled: it answers nothing.
    const peer = new RawPeer(b);
    const resets = (): number[] => peer.frames.filter((f) => (f.flags & Flag.rst) !== 0).map((f) => f.streamId);
    try {
      const failures: Promise<MuxError>[] = [];
      const channels: Channel[] = [];
      for (let i = 0; i < 20; i++) {
        const channel = client.dial({ openTimeout: dialTimeout });
        failures.push(new Promise<MuxError>((resolve) => channel.once('error', resolve)));
        channel.write('request');
        channels.push(channel);
      }
      const errors = await within(Promise.all(failures), 5000, 'the open timeouts');
      await new Promise((resolve) => setTimeout(resolve, 50));
      const sent = channels.slice(0, 4).map((channel) => channel.id);
      // Before: each failure sent the SYN (and data) of a dial failed a moment later, then its RST: 20 SYNs and
      // 20 RSTs here; ~1,000 such resets made a peer with default options end the session (rapid reset).
      assert.deepEqual(synsSeen(peer), sent);
      assert.deepEqual(resets(), sent);
      for (const [i, error] of errors.entries()) {
        assert.equal(error.code, 'ERR_MUX_OPEN_TIMEOUT');
        if (i < 4) assert.match(error.message, /the peer did not acknowledge channel/);
        // Before: "never heard of it (safe to retry)" of channels whose SYN and data had reached the peer.
        else assert.match(error.message, /not opened within its open timeout: its SYN waited .* never heard of it/);
      }
      assert.equal(client.state, 'open');

      // A dial made later, with more than half its open timeout left when the places free, is sent.
      const later = client.dial({ openTimeout: dialTimeout });
      later.on('error', noop);
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.deepEqual(synsSeen(peer), [...sent, later.id]);
    } finally {
      client.destroy();
    }
  });
}

test("a dial's own open timeout, not the session's, says whether a place an open timeout freed goes to it", async () => {
  const [a, b] = memoryPipe();
  // The session's timeout is long; each dial has its own.
  const client = multiplexedClient(a, { keepAliveInterval: 0, ackBacklog: 1, openTimeout: 10_000 });
  const peer = new RawPeer(b);
  try {
    const first = client.dial({ openTimeout: 300 });
    first.on('error', noop);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const next = client.dial({ openTimeout: 1000 }); // ~800 ms of its 1,000 left when the first times out
    next.on('error', noop);
    await until(() => first.destroyed, 3000, 'the first dial to time out');
    await until(() => synsSeen(peer).length >= 2, 1000, 'the next SYN');
    // Before: half of the session's 10 s was the bar, so the next dial was passed over and failed unsent.
    assert.deepEqual(synsSeen(peer), [first.id, next.id]);
    assert.equal(next.errored, null);
  } finally {
    client.destroy();
  }
});

test('places freed by open timeouts go to dials with more than half their open timeout left, in order; those passed over get the places acknowledgements free', async () => {
  const [a, b] = memoryPipe();
  const client = multiplexedClient(a, { keepAliveInterval: 0, ackBacklog: 2, openTimeout: 1000 });
  const peer = new RawPeer(b);
  const dial = (): Channel => {
    const channel = client.dial();
    channel.on('error', noop);
    return channel;
  };
  const sleep = (ms: number): Promise<unknown> => new Promise((resolve) => setTimeout(resolve, ms));
  try {
    const first = [dial(), dial()];
    const early = dial(); // ~0 ms left when the first two time out
    await sleep(300);
    const passed = dial(); // ~300 ms left then: passed over
    await sleep(300);
    const late = [dial(), dial(), dial()]; // ~600 ms left then
    await until(() => synsSeen(peer).length >= 4, 3000, 'the SYNs given the places the timeouts freed');
    await sleep(20);
    assert.deepEqual(synsSeen(peer), [first[0]!.id, first[1]!.id, late[0]!.id, late[1]!.id]);
    assert.match(String(early.errored), /never heard of it/);
    // The peer acknowledges one: its place goes to the dial passed over, which still has time.
    peer.send(frame(FrameType.windowUpdate, Flag.ack, late[0]!.id, 0));
    await until(() => synsSeen(peer).length >= 5, 2000, 'the SYN of the dial passed over');
    assert.deepEqual(synsSeen(peer).slice(4), [passed.id]);
    assert.equal(passed.errored, null);
  } finally {
    client.destroy();
  }
});

test('a dial whose SYN never reached the transport (it took no more) says so at its open timeout, not that the peer did not acknowledge it', async () => {
  // A transport that takes one write and never completes it: the session's writes wait behind it.
  const transport = new Duplex({ read() {}, write() {} });
  const client = multiplexedClient(transport, { keepAliveInterval: 0, openTimeout: 200 });
  try {
    const failed = (channel: Channel): Promise<Error> => new Promise((resolve) => channel.once('error', resolve));
    const first = client.dial();
    const firstFailed = failed(first);
    first.write(Buffer.alloc(100_000)); // its SYN leaves in the write the transport keeps
    await new Promise((resolve) => setTimeout(resolve, 20));
    const second = client.dial();
    const secondFailed = failed(second);
    assert.match(
      (await within(firstFailed, 2000, 'the first timeout')).message,
      /the peer did not acknowledge channel 1/,
    );
    // Before: "the peer did not acknowledge channel 3", of a SYN that never left the process.
    assert.match(
      (await within(secondFailed, 2000, 'the second timeout')).message,
      /channel 3 was not opened .* its SYN waited behind writes the transport did not take and never left, so the peer never heard of it/,
    );
  } finally {
    client.destroy();
  }
});

test('a normal Go Away refuses the dials still waiting in the ACK backlog, not those that left it', async () => {
  const [a, b] = memoryPipe();
  const client = multiplexedClient(a, { keepAliveInterval: 0, ackBacklog: 1 });
  const peer = new RawPeer(b);
  try {
    const sent = client.dial();
    sent.on('error', noop);
    const gone = [client.dial(), client.dial()];
    for (const channel of gone) channel.on('error', noop).destroy();
    const waiting = client.dial();
    const refused = new Promise<Error>((resolve) => waiting.once('error', resolve));
    await new Promise((resolve) => setTimeout(resolve, 20));
    peer.send(frame(FrameType.goAway, 0, 0, 0));
    assert.ok((await within(refused, 2000, 'the refusal')) instanceof ChannelRefusedError);
    // Before: the two destroyed dials were counted as refused too.
    assert.equal(client.stats().refusalsIn, 1);
  } finally {
    client.destroy();
  }
});

test('dials ended at once keep their ACK backlog place past their open timeout, unfailed, until the reply acknowledges them', async () => {
  const [a, b] = memoryPipe();
  const client = multiplexedClient(a, { keepAliveInterval: 0, ackBacklog: 2, openTimeout: 150 });
  // A peer as Go's yamux is with an application slow to accept: it answers nothing yet.
  const peer = new RawPeer(b);
  try {
    const ended: Channel[] = [];
    const failures: Error[] = [];
    for (let i = 0; i < 2; i++) {
      const channel = client.dial();
      channel.on('error', (error) => failures.push(error));
      channel.end('request'); // the request, then its FIN, before any acknowledgement
      ended.push(channel);
    }
    await new Promise((resolve) => setTimeout(resolve, 400)); // past both open timeouts
    const later = client.dial({ openTimeout: 10_000 });
    later.on('error', (error) => failures.push(error));
    await new Promise((resolve) => setTimeout(resolve, 200));
    // Go's yamux takes a stream whose FIN it read before its application accepted it without acknowledging it,
    // and refuses streams beyond its accept backlog: a third SYN now would be refused, so none leaves.
    assert.deepEqual(synsSeen(peer), [ended[0]!.id, ended[1]!.id]);
    assert.deepEqual(failures, [], 'the ended dials wait for their reply without failing');
    // The reply acknowledges the first: its place goes to the waiting dial.
    peer.send(frame(FrameType.data, Flag.ack | Flag.fin, ended[0]!.id, Buffer.from('reply')));
    const chunks: Buffer[] = [];
    ended[0]!.on('data', (chunk: Buffer) => chunks.push(chunk));
    await within(new Promise((resolve) => ended[0]!.once('end', resolve)), 2000, 'the reply');
    assert.equal(Buffer.concat(chunks).toString(), 'reply');
    await until(() => synsSeen(peer).includes(later.id), 2000, "the waiting dial's SYN");
    assert.equal(synsSeen(peer).length, 3);
    assert.deepEqual(failures, []);
  } finally {
    client.destroy();
  }
});

test('channels the peer reset while they waited in the accept queue leave room in it', async () => {
  const [a, b] = memoryPipe();
  const client = multiplexedClient(a, { keepAliveInterval: 0 });
  const server = multiplexedServer(b, { keepAliveInterval: 0, acceptBacklog: 16 }); // accepted later
  try {
    const gaveUp: Channel[] = [];
    for (let i = 0; i < 16; i++) {
      const channel = client.dial();
      channel.on('error', noop);
      channel.write('x');
      gaveUp.push(channel);
    }
    await until(() => server.stats().channelsOpen === 16, 5000, 'sixteen channels queued');
    for (const channel of gaveUp) channel.destroy(); // the client gives up on them (a request timeout, say)
    await until(() => server.stats().channelsOpen === 0, 5000, 'the reset channels left the table');
    const fresh = client.dial();
    let failure: Error | undefined;
    fresh.on('error', (error) => (failure = error));
    fresh.write('hello');
    // Arrived (queued) or refused, before the application asks: accept() itself drops the reset ones it meets.
    await until(
      () => server.stats().channelsOpen === 1 || server.stats().refusalsOut > 0,
      5000,
      'the new channel at the peer',
    );
    assert.equal(server.stats().refusalsOut, 0, 'the new channel was not refused');
    const accepted = await within(server.accept(), 5000, 'accept() of the new channel');
    assert.equal(accepted.id, fresh.id, 'the new channel, not one that was reset, is accepted');
    assert.equal(failure, undefined, 'the new channel was not refused');
    assert.equal(server.stats().refusalsOut, 0);
    accepted.resume();
  } finally {
    client.destroy();
    server.destroy();
  }
});

for (const kind of ['node', 'light'] as const) {
  test(`${kind} channels the peer reset while they waited in the accept queue let go of what they received`, async () => {
    const [a, b] = memoryPipe();
    const [makeClient, makeServer] =
      kind === 'node' ? [multiplexedClient, multiplexedServer] : [lightClient, lightServer];
    const client = makeClient(a, { keepAliveInterval: 0 });
    // Accepts nothing for now: the peer's channels wait in the queue, counted against maxSessionBuffered.
    const server = makeServer(b, { keepAliveInterval: 0, maxSessionBuffered: 1024 * 1024 });
    try {
      // Over a few turns: what the last round's frames were read from is let go of only after the turn.
      const arrayBuffers = async (): Promise<number> => (await settledMemory(5)).arrayBuffers;
      const before = await arrayBuffers();
      // Rounds of four channels of 200 KB each (within the bound), each round reset by the peer once its data
      // arrived: 3.2 MB in all that the session no longer counts.
      for (let round = 0; round < 4; round++) {
        const channels = Array.from({ length: 4 }, () => {
          const channel = client.dial();
          channel.on('error', noop);
          channel.write(new Uint8Array(200 * 1024).fill(7));
          return channel;
        });
        await until(() => server.bufferedBytes === 4 * 200 * 1024, 5000, 'the round queued at the server');
        for (const channel of channels) channel.destroy();
        await until(() => server.stats().channelsOpen === 0, 5000, 'the reset channels left the table');
      }
      assert.equal(server.bufferedBytes, 0);
      const held = (await arrayBuffers()) - before;
      assert.ok(held < 1024 * 1024, `the accept queue holds ${held} bytes of channels that left (3.2 MB were sent)`);
      // The queue still works: the next channel is the one accepted.
      const fresh = client.dial();
      fresh.write(new Uint8Array([1]));
      const accepted: { id: number } = await within<{ id: number }>(
        server.accept(),
        5000,
        'accept() of the new channel',
      );
      assert.equal(accepted.id, fresh.id);
    } finally {
      client.destroy();
      server.destroy();
    }
  });
}

test("a queued channel the peer reset is seen by 'channelClose' with the bytes it held, as an accepted one is", async () => {
  const [a, b] = memoryPipe();
  const client = multiplexedClient(a, { keepAliveInterval: 0 });
  const server = multiplexedServer(b, { keepAliveInterval: 0 });
  try {
    const seen: { bufferedBytes: number; state: string }[] = [];
    server.on('channelClose', (stats) => seen.push({ bufferedBytes: stats.bufferedBytes, state: stats.state }));
    const channel = client.dial();
    channel.on('error', noop);
    channel.write(new Uint8Array(1000));
    await until(() => server.bufferedBytes === 1000, 5000, 'the bytes queued at the server');
    channel.destroy();
    await until(() => seen.length === 1, 5000, "the server's 'channelClose'");
    assert.deepEqual(seen, [{ bufferedBytes: 1000, state: 'reset' }]);
  } finally {
    client.destroy();
    server.destroy();
  }
});

for (const peerEnded of [false, true]) {
  test(`the peer's close() with 300 of this side's dials unaccepted (ACK backlog 256${peerEnded ? ', each ended by its dialler' : ''}): all 300 are ChannelRefusedError, and the peer counts 256 refusals, no resets`, async () => {
    const [a, b] = memoryPipe();
    const dialler = multiplexedServer(a, { keepAliveInterval: 0 });
    const closer = multiplexedClient(b, { keepAliveInterval: 0 });
    try {
      const failures: Promise<Error | undefined>[] = [];
      for (let i = 0; i < 300; i++) {
        const channel = dialler.dial();
        channel.on('error', noop);
        failures.push(new Promise((resolve) => channel.on('close', () => resolve(channel.failure))));
        channel.write('request');
        if (peerEnded) channel.end();
      }
      // The closer accepts none: 256 wait in its accept queue, 44 in the dialler's ACK backlog.
      await until(() => closer.stats().channelsOpen === 256, 5000, "the peer's accept queue filled");
      await within(closer.close(), 10_000, 'close()');
      const errors = await within(Promise.all(failures), 10_000, 'every dial settled');
      const kinds = new Map<string, number>();
      for (const error of errors) {
        const kind = error instanceof ChannelRefusedError ? 'refused' : `${error?.name} ${(error as MuxError)?.code}`;
        kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
      }
      assert.deepEqual(Object.fromEntries(kinds), { refused: 300 });
      const stats = closer.stats();
      assert.equal(stats.refusalsOut, 256);
      assert.equal(stats.resetsOut, 0);
      assert.equal(dialler.stats().refusalsIn, 300, "the dialler counts each as a refusal, the backlog's too");
    } finally {
      dialler.destroy();
      closer.destroy();
    }
  });
}
