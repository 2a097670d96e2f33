/**
 * A session that fails under many channels tells them a batch a turn of the event loop (ending-channels.ts):
 * what the failure sets off in the application (a Node stream's teardown, a `pipeline`'s cleanup) held the
 * event loop for seconds when 65,536 channels were told in one turn. Every channel still hears of it, with the
 * session's error, before the session reports its own end; a session with few channels ends within the turn.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pipeline } from 'node:stream';
import { text } from 'node:stream/consumers';
import {
  type Channel,
  type LightChannel,
  type LightSession,
  type Session,
  lightClient,
  lightServer,
  multiplexedClient,
  multiplexedServer,
} from '../src/index.js';
import { WebSession, type WebChannel } from '../src/web/index.js';
import { duplexTransport } from '../src/node/transport.js';
import { memoryPipe, until } from './helpers.js';

const noop = (): void => {};
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

type AnyChannel = Channel | LightChannel;

/** A server session holding `count` channels its peer opened, each piped back (Node) or read (light). */
async function serverWith(
  kind: 'node' | 'light',
  count: number,
  readTimeSlice?: number,
): Promise<{ server: Session | LightSession; channels: AnyChannel[] }> {
  const [a, b] = memoryPipe();
  const options = { keepAliveInterval: 0, ...(readTimeSlice === undefined ? {} : { readTimeSlice }) };
  const client = kind === 'node' ? multiplexedClient(a, options) : lightClient(a, options);
  const server = kind === 'node' ? multiplexedServer(b, options) : lightServer(b, options);
  const channels: AnyChannel[] = [];
  server.on('channel', (channel: AnyChannel) => {
    channels.push(channel);
    if (kind === 'node') pipeline(channel as Channel, channel as Channel, noop);
    else (channel as LightChannel).on('data', noop);
  });
  for (let i = 0; i < count; i++) {
    const channel = client.dial();
    channel.on('error', noop);
    channel.write(new Uint8Array([i & 0xff]));
  }
  await until(() => channels.length === count, 20_000, `${count} channels at the server`);
  client.destroy();
  return { server, channels };
}

for (const kind of ['node', 'light'] as const) {
  test(`${kind}: a session failing under 2,000 channels tells them over several turns, each with its error, before it reports its end`, async () => {
    const { server, channels } = await serverWith(kind, 2000);
    const failure = new Error('the peer went away');
    const told: Error[] = [];
    for (const channel of channels) {
      (channel as { on(event: 'error', listener: (error: Error) => void): unknown }).on('error', (error) =>
        told.push(error),
      );
    }
    let destroyedAtClose = -1;
    server.on('close', () => {
      destroyedAtClose = channels.filter((channel) => channel.destroyed).length;
    });
    const closed = server.closed.then(
      () => assert.fail('closed should reject'),
      (error: unknown) => error,
    );
    server.destroy(failure);
    const inTheTurn = channels.filter((channel) => channel.destroyed).length;
    await turn();
    const afterOneTurn = channels.filter((channel) => channel.destroyed).length;
    assert.equal(await closed, failure);
    // Some in the turn of the failure, more in the next, all of them before the session's end was reported.
    assert.ok(inTheTurn > 0 && inTheTurn < 2000, `told in the turn of the failure: ${inTheTurn}`);
    assert.ok(afterOneTurn > inTheTurn && afterOneTurn < 2000, `told after one more turn: ${afterOneTurn}`);
    assert.equal(destroyedAtClose, 2000, 'every channel was told before the session reported its end');
    await until(() => told.length === 2000, 5000, "every channel's 'error'");
    assert.ok(
      told.every((error) => error === failure),
      'each channel failed with the session error',
    );
    assert.equal(server.stats().channelsOpen, 0);
  });
}

test('a session failing under few channels tells them all within the turn, as before', async () => {
  const { server, channels } = await serverWith('node', 40);
  server.destroy(new Error('gone'));
  assert.equal(channels.filter((channel) => channel.destroyed).length, 40);
  await assert.rejects(server.closed, /gone/);
});

test('readTimeSlice 0 tells every channel within the turn of the failure', async () => {
  const { server, channels } = await serverWith('node', 2000, 0);
  let reported = false;
  server.on('close', () => (reported = true));
  server.destroy(new Error('gone'));
  assert.equal(channels.filter((channel) => channel.destroyed).length, 2000);
  assert.equal(reported, true, "the session's end reported within the call");
  await assert.rejects(server.closed, /gone/);
});

test('a write made before its channel was told tells it then: it fails with the session error, not as a write after end', async () => {
  const { server, channels } = await serverWith('node', 2000);
  const failure = new Error('the peer went away');
  server.destroy(failure);
  const last = channels[channels.length - 1] as Channel;
  assert.equal(last.destroyed, false, 'the last channel is told in a later turn');
  const written = new Promise<Error | null | undefined>((resolve) => last.write('late', resolve));
  // Nothing of the peer's is left to read: told by the write, it fails at once, with the session's error.
  assert.equal(last.destroyed, true);
  assert.equal(last.failure, failure);
  assert.ok((await written) instanceof Error, 'the write fails');
  await assert.rejects(server.closed, /went away/);
});

/**
 * A server session of `kind` holding `count` channels whose peer wrote `reply` and ended (FIN); nothing is read
 * yet and no channel has an 'error' listener.
 */
async function repliedTo(
  kind: 'node' | 'light' | 'web',
  count: number,
): Promise<{ server: Session | LightSession | WebSession; channels: (AnyChannel | WebChannel)[] }> {
  const [a, b] = memoryPipe();
  const options = { keepAliveInterval: 0 };
  const client = lightClient(a, options);
  const server =
    kind === 'node'
      ? multiplexedServer(b, options)
      : kind === 'light'
        ? lightServer(b, options)
        : new WebSession(duplexTransport(b), 'server', options);
  const channels: (AnyChannel | WebChannel)[] = [];
  (server as { on(event: 'channel', listener: (channel: AnyChannel | WebChannel) => void): unknown }).on(
    'channel',
    (channel) => channels.push(channel),
  );
  for (let i = 0; i < count; i++) {
    const channel = client.dial();
    channel.on('error', noop);
    channel.end(new TextEncoder().encode('reply'));
  }
  await until(() => channels.length === count, 20_000, `${count} channels at the server`);
  // Decoded frames and payload, not bytes read: a byte counts in `bytesIn` when read, before it is decoded (the
  // read time slice may hold it, and `destroy()` drops what is held).
  await until(
    () => {
      const [got, sent] = [server.stats(), client.stats()];
      return got.framesIn >= sent.framesOut && got.dataBytesIn >= sent.dataBytesOut;
    },
    5000,
    'every reply and FIN decoded',
  );
  client.destroy();
  return { server, channels };
}

async function readWeb(channel: WebChannel): Promise<string> {
  let got = '';
  const decoder = new TextDecoder();
  const reader = channel.readable.getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return got;
    got += decoder.decode(value, { stream: true });
  }
}

for (const kind of ['node', 'light', 'web'] as const) {
  test(`${kind}: channels written to and ended before the session told them still read the peer's reply to its end; no end reports a FIN that did not go`, async () => {
    const { server, channels } = await repliedTo(kind, 1000);
    const uncaught: unknown[] = [];
    const onUncaught = (error: unknown): void => void uncaught.push(error);
    process.on('uncaughtException', onUncaught);
    try {
      const finished: number[] = [];
      const endResults: (Error | undefined)[] = [];
      server.destroy(new Error('the peer went away'));
      // In the same turn: most channels are not told yet; each is ended, every other one written to first.
      const untold = channels.filter((channel) => !(channel as { destroyed?: boolean }).destroyed).length;
      assert.ok(untold > 0, 'some channels wait to be told');
      const reads: Promise<string>[] = [];
      channels.forEach((channel, i) => {
        if (kind === 'web') {
          const writer = (channel as WebChannel).writable.getWriter();
          if (i % 2 === 0) writer.write(new Uint8Array([1])).catch(noop);
          writer.close().then(
            () => finished.push(i),
            (error: unknown) => endResults.push(error as Error),
          );
          reads.push(readWeb(channel as WebChannel));
          return;
        }
        const endpoint = channel as Channel & LightChannel;
        endpoint.on('finish', () => finished.push(i));
        if (i % 2 === 0) endpoint.write(kind === 'node' ? Buffer.from('x') : new Uint8Array([1]));
        if (kind === 'node') (endpoint as Channel).end((error?: Error | null) => endResults.push(error ?? undefined));
        else endpoint.end();
        reads.push(
          kind === 'node'
            ? text(endpoint as Channel)
            : (async () => {
                let got = '';
                for await (const chunk of endpoint as LightChannel) got += Buffer.from(chunk).toString();
                return got;
              })(),
        );
      });
      const texts = await Promise.all(reads);
      assert.equal(texts.filter((got) => got === 'reply').length, 1000, "every reply read to its 'end'");
      await assert.rejects(server.closed, /went away/);
      await new Promise((resolve) => setTimeout(resolve, 20));
      assert.deepEqual(finished, [], 'no channel finished: no FIN went');
      if (kind !== 'light')
        assert.ok(
          endResults.every((error) => error instanceof Error),
          'each end failed',
        );
      assert.deepEqual(uncaught, []);
    } finally {
      process.off('uncaughtException', onUncaught);
    }
  });
}

test('close() called while a failed session still tells its channels resolves once it has reported its end', async () => {
  const { server, channels } = await serverWith('node', 2000);
  let reported = false;
  server.on('close', () => (reported = true));
  server.destroy(new Error('gone'));
  await server.close();
  assert.equal(reported, true);
  assert.equal(channels.filter((channel) => channel.destroyed).length, 2000);
  await assert.rejects(server.closed, /gone/);
});

for (const kind of ['node', 'light'] as const) {
  test(`${kind}: channels written to before the session told them, and read only afterwards, still give the peer's reply; each such write says to wait`, async () => {
    const { server, channels } = await repliedTo(kind, 1000);
    server.destroy(new Error('the peer went away'));
    const returned: boolean[] = [];
    for (const channel of channels) {
      (channel as { on(event: 'error', listener: () => void): unknown }).on('error', noop);
      if (kind === 'node') (channel as Channel).write('x');
      else returned.push((channel as LightChannel).write(new Uint8Array([1])));
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
    const texts = await Promise.all(
      channels.map((channel) =>
        kind === 'node'
          ? text(channel as Channel)
          : (async () => {
              let got = '';
              for await (const chunk of channel as LightChannel) got += Buffer.from(chunk).toString();
              return got;
            })(),
      ),
    );
    assert.equal(texts.filter((got) => got === 'reply').length, 1000);
    if (kind === 'light')
      assert.ok(
        returned.every((ok) => !ok),
        'write() on a failed channel says false',
      );
  });
}

test("a WebChannel's end from a 'channelClose' listener of the first channels told, on a channel not told yet, fails with the session error", async () => {
  const { server, channels } = await repliedTo('web', 1000);
  const failure = new Error('the peer went away');
  let result: Promise<unknown> | undefined;
  let ended = false;
  (server as WebSession).on('channelClose', () => {
    // (Once: telling that channel out of turn emits its own 'channelClose' within the call.)
    if (ended) return;
    ended = true;
    result = (channels[channels.length - 1] as WebChannel).writable
      .getWriter()
      .close()
      .then(
        () => 'closed',
        (error: unknown) => error,
      );
  });
  server.destroy(failure);
  assert.ok(result !== undefined, 'the listener ran within the failure');
  assert.equal(await result, failure);
  await assert.rejects(server.closed, /went away/);
});
