/**
 * Live interoperability with the original Go package github.com/alecthomas/multiplex (commit e565e6f), built
 * from its unchanged source in ../shared through the peer in test/interop/multiplex-go (README.md there).
 * muxwire speaks `protocol: 'multiplex'`. Every scenario runs with muxwire as the client (the original
 * listens, MultiplexedServer) and as the server (the original dials, MultiplexedClient); where the original
 * opens the channels, muxwire takes them with each accept style: `for await`, an `accept()` loop and a
 * 'channel' listener. Both sides are checked: the peer's RESULT line must be ok, and muxwire must see exact
 * data, or the typed error the scenario is about.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  type Channel,
  MuxError,
  type Session,
  SessionClosedError,
  type SessionOptions,
  TransportClosedError,
  connect,
  createServer,
} from '../../src/index.js';
import {
  type GoPeer,
  type GoPeerSession,
  type GoResult,
  MULTIPLEX_INSTALL_HINT,
  multiplexOriginalDir,
  prepareMultiplexPeer,
  startGoPeerSession,
} from './go-peer.js';
import { ByteReader, MiB, message, payload, payloadSizes, sha256, waitUntil, within } from './length-prefixed.js';

type Role = 'client' | 'server';
const ROLES: Role[] = ['client', 'server'];
type AcceptStyle = 'for await' | 'accept() loop' | "'channel' listener";
const STYLES: AcceptStyle[] = ['for await', 'accept() loop', "'channel' listener"];
const OPTIONS: SessionOptions = { protocol: 'multiplex' };
const PEER = 'the original Go alecthomas/multiplex';
/** INTEROP_VERBOSE=1 prints every RESULT line of the peer. */
const VERBOSE = process.env.INTEROP_VERBOSE === '1';
/** The README example's scale. */
const HELLO_CHANNELS = 10_000;

const status = await prepareMultiplexPeer();

if (status.kind === 'missing') {
  if (process.env.CI === 'true') {
    test('original multiplex peer prerequisites', () => {
      assert.fail(
        `the live tests against the original multiplex cannot run on CI: ${status.what} missing; ` +
          `${MULTIPLEX_INSTALL_HINT} and the original's source in ${multiplexOriginalDir()} are needed`,
      );
    });
  } else {
    test(
      `live against ${PEER}`,
      {
        skip: `${MULTIPLEX_INSTALL_HINT} and the original's source in ${multiplexOriginalDir()} are needed (missing: ${status.what})`,
      },
      () => {},
    );
  }
} else if (status.kind === 'broken') {
  test('the peer on the original multiplex builds', () => {
    assert.fail(status.message);
  });
} else {
  registerTests(status.path);
}

interface Outcome {
  result: GoResult;
  go: GoPeer;
}

/**
 * Starts the original's peer (listening when muxwire is the client, dialling when it is the server), opens the
 * muxwire session, runs `body`, then waits for the peer's RESULT. With `end: 'clean'` the muxwire session must
 * then end without error; with `'failed'` the body has checked how it failed. Everything is cleaned up.
 */
async function withOriginal(
  peerPath: string,
  role: Role,
  goArgs: string[],
  runMs: number,
  end: 'clean' | 'failed',
  body: (session: Session, go: GoPeer) => Promise<void>,
): Promise<Outcome> {
  const started: GoPeerSession<Session> = { session: undefined, go: undefined, server: undefined };
  try {
    const { session: s, go } = await startGoPeerSession(started, peerPath, role, goArgs, runMs, {
      client: (port) => connect({ host: '127.0.0.1', port, ...OPTIONS }),
      server: (accepted) => createServer(OPTIONS, (session) => accepted(session)),
    });
    await body(s, go);
    const result = await within(go.result, runMs + 5_000, "the peer's RESULT line");
    if (end === 'clean') {
      await within(s.closed, 10_000, 'the muxwire session to end').catch((error: unknown) => {
        throw new Error(
          `the muxwire session ended with an error: ${(error as Error).name}: ${(error as Error).message}`,
          { cause: error },
        );
      });
      assert.equal(s.closeError, undefined);
    }
    return { result, go };
  } catch (error) {
    const detail = started.go === undefined ? '' : `\n${started.go.output()}`;
    if (error instanceof Error) error.message += detail;
    throw error;
  } finally {
    started.session?.destroy();
    started.server?.close();
    started.go?.kill();
  }
}

/** The peer reported success: RESULT ok, exit 0. */
function expectOk({ result, go }: Outcome): Record<string, string> {
  if (VERBOSE) console.log(result.line);
  assert.equal(result.reason, undefined, `the original's peer failed: ${result.line}\n${go.output()}`);
  assert.ok(result.ok, result.line);
  assert.equal(result.exitCode, 0, result.line);
  return result.fields;
}

/**
 * Takes the peer's channels in `style` and hands each to `handle` (which must not block). Resolves when the
 * accepting stops: to undefined when the session closed cleanly, else to the error that stopped it.
 */
function acceptChannels(
  session: Session,
  style: AcceptStyle,
  handle: (channel: Channel) => void,
): Promise<Error | undefined> {
  if (style === 'for await') {
    return (async () => {
      try {
        for await (const channel of session) handle(channel);
        return undefined;
      } catch (error) {
        return error as Error;
      }
    })();
  }
  if (style === 'accept() loop') {
    return (async () => {
      for (;;) {
        let channel: Channel;
        try {
          channel = await session.accept();
        } catch (error) {
          // A clean close ends accept() with SessionClosedError; a failed session with its error.
          return error instanceof SessionClosedError && session.closeError === undefined ? undefined : (error as Error);
        }
        handle(channel);
      }
    })();
  }
  session.on('channel', handle);
  return session.closed.then(
    () => undefined,
    (error: unknown) => error as Error,
  );
}

/** Every byte a channel delivers until its end (or error); the channel ends its own side after the peer's. */
function collect(channel: Channel): Promise<{ data: Buffer; error: Error | undefined }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let error: Error | undefined;
    channel.on('data', (chunk: Buffer) => chunks.push(chunk));
    channel.on('error', (e: Error) => {
      error = e;
    });
    channel.on('end', () => channel.end());
    channel.on('close', () => resolve({ data: Buffer.concat(chunks), error }));
  });
}

/** The echo side of the README example: every byte back, then the end after the peer's. True when it was `hello`. */
function echoHello(channel: Channel): Promise<boolean> {
  const chunks: Buffer[] = [];
  channel.on('data', (chunk: Buffer) => {
    chunks.push(chunk);
    channel.write(chunk);
  });
  return collect(channel).then(({ error }) => error === undefined && Buffer.concat(chunks).toString() === 'hello');
}

/** The dialling side of the README example: writes `hello` and reads 5 bytes (the caller closes). */
async function sayHello(channel: Channel): Promise<string> {
  const reader = new ByteReader(channel);
  channel.write('hello');
  return (await reader.read(5, 30_000)).toString();
}

/**
 * Closes channels muxwire dialled to the original, once all their replies are in, and waits until each is
 * closed without error. Closing one earlier, while the original may still be writing on others, can deadlock
 * the original: its session loop handles a peer's close by waiting for the channel to queue its answering
 * RST on the send queue that the loop itself drains, so with that queue full (1,024 frames) it waits forever.
 */
async function closeAll(channels: Channel[]): Promise<void> {
  await Promise.all(
    channels.map((channel) => {
      channel.end();
      return new Promise((resolve) => (channel.closed ? resolve(undefined) : channel.once('close', resolve)));
    }),
  );
  for (const channel of channels) assert.equal(channel.failure, undefined, `channel ${channel.id}`);
}

/** The payload SHA-256 digests in the peer's CHANNEL lines, sorted. */
function peerDigests(go: GoPeer): string[] {
  return go
    .lines('CHANNEL')
    .map((line) => / sha256=([0-9a-f]{64})/.exec(line)?.[1] ?? `no digest in ${line}`)
    .sort();
}

/** Waits until the peer has done its work (its DONE line) and returns that line. */
async function peerDone(go: GoPeer, ms: number): Promise<string> {
  return within(go.line('DONE'), ms, "the original's peer to finish its work (DONE)");
}

function assertTyped(error: unknown, what: string): asserts error is MuxError {
  assert.ok(error instanceof MuxError, `${what}: expected a muxwire error, got ${String(error)}`);
  assert.match(error.code, /^ERR_MUX_/, what);
}

function registerTests(peer: string): void {
  describe(`live against ${PEER} (e565e6f), protocol 'multiplex'`, { timeout: 600_000 }, () => {
    for (const role of ROLES) {
      describe(`muxwire as ${role}`, () => {
        test(
          `the README example at full scale: muxwire dials ${HELLO_CHANNELS.toLocaleString('en')} channels to ${PEER}'s echo server, hello and its echo on each`,
          { timeout: 120_000 },
          async () => {
            const outcome = await withOriginal(peer, role, ['-scenario', 'echo'], 90_000, 'clean', async (session) => {
              const channels = Array.from({ length: HELLO_CHANNELS }, () => session.dial());
              const replies = await within(
                Promise.all(channels.map((channel) => sayHello(channel))),
                60_000,
                'the hello echoes',
              );
              assert.equal(
                replies.filter((reply) => reply === 'hello').length,
                HELLO_CHANNELS,
                'channels that got their hello back',
              );
              // Closed once every echo is in: see closeAll.
              await within(closeAll(channels), 20_000, 'the channels to close');
              await within(session.close(), 10_000, 'close()');
            });
            const fields = expectOk(outcome);
            assert.equal(fields.channels, String(HELLO_CHANNELS));
            assert.equal(fields.echoed, String(HELLO_CHANNELS));
            assert.equal(fields.bytes, String(5 * HELLO_CHANNELS));
          },
        );

        test(
          `a channel end()ed while ${PEER}'s echo of its 1 MiB still comes, unread: the close ends both directions (the rest is dropped), the channel ends, and a channel dialled next gets its echo`,
          { timeout: 120_000 },
          async () => {
            const outcome = await withOriginal(peer, role, ['-scenario', 'echo'], 30_000, 'clean', async (session) => {
              const first = session.dial();
              const events: string[] = [];
              first.on('end', () => events.push('end'));
              first.on('close', () => events.push('close'));
              first.write(Buffer.alloc(MiB, 0x41));
              await within(new Promise((resolve) => first.once('data', resolve)), 30_000, 'the first of the echo');
              first.pause(); // the application is done with it: it reads no more, and closes
              first.end();
              await within(new Promise((resolve) => first.once('finish', resolve)), 10_000, 'its close to leave');
              // Before, the echo still coming was delivered to the channel: past a window unread, the session
              // stopped reading the transport for good, and no other channel was heard again.
              const second = session.dial();
              assert.equal(await sayHello(second), 'hello', 'the next channel got its echo');
              await within(closeAll([second]), 10_000, 'the next channel to close');
              assert.ok(first.readableLength <= MiB, `${first.readableLength} bytes kept unread`);
              first.resume(); // what arrived before its close is read, then its end: the channel closes
              await waitUntil(() => events.includes('close'), 10_000, "the ended channel's 'close'");
              assert.deepEqual(events, ['end', 'close']);
              await within(session.close(), 10_000, 'close()');
            });
            // The original may still be writing the first channel's echo when the close reaches it: that write
            // fails (EOF), as it should. Nothing else may.
            const line = outcome.result.line;
            assert.ok(
              outcome.result.reason === undefined ||
                (outcome.result.reason === 'channel-error' &&
                  line.includes(' echoed=2 ') &&
                  line.endsWith('echo write: EOF"')),
              `the original's peer failed: ${line}`,
            );
          },
        );

        test(
          `200 channels dialled by muxwire to ${PEER}, payloads 0 B to 1 MiB, compared by SHA-256 both ways`,
          { timeout: 120_000 },
          async () => {
            const sizes = payloadSizes(200, 21);
            const sent: string[] = [];
            const outcome = await withOriginal(
              peer,
              role,
              ['-scenario', 'bulk-serve'],
              90_000,
              'clean',
              async (session) => {
                const channels = sizes.map(() => session.dial());
                await within(
                  Promise.all(
                    sizes.map(async (size, i) => {
                      const channel = channels[i]!;
                      const reader = new ByteReader(channel);
                      const data = payload(size);
                      sent.push(sha256(data));
                      channel.write(message(data));
                      const echo = await reader.readMessage(60_000);
                      assert.equal(sha256(echo), sha256(data), `the echo of ${size} bytes`);
                    }),
                  ),
                  80_000,
                  '200 echoes',
                );
                // The opener closes (the original's echo waits for it), once every echo is in: see closeAll.
                await within(closeAll(channels), 20_000, 'the channels to close');
                await within(session.close(), 10_000, 'close()');
              },
            );
            const fields = expectOk(outcome);
            assert.equal(fields.ok, '200');
            assert.equal(fields.bytes, String(sizes.reduce((a, b) => a + b, 0)));
            // What the original received, by its own digests, is what muxwire sent.
            assert.deepEqual(peerDigests(outcome.go), sent.sort());
          },
        );

        for (const style of STYLES) {
          describe(`muxwire accepts with ${style}`, () => {
            test(
              `the README example at full scale: ${PEER}'s client dials ${HELLO_CHANNELS.toLocaleString('en')} channels, each writes hello, reads the echo, closes: ${HELLO_CHANNELS.toLocaleString('en')} of ${HELLO_CHANNELS.toLocaleString('en')}`,
              { timeout: 120_000 },
              async () => {
                const results: Promise<boolean>[] = [];
                const outcome = await withOriginal(
                  peer,
                  role,
                  ['-scenario', 'hello', '-count', String(HELLO_CHANNELS)],
                  40_000,
                  'clean',
                  async (session, go) => {
                    const accepting = acceptChannels(session, style, (channel) => results.push(echoHello(channel)));
                    const done = await peerDone(go, 45_000);
                    assert.equal(done, `DONE ok=${HELLO_CHANNELS}`, 'every channel of the original got its hello back');
                    assert.equal(results.length, HELLO_CHANNELS, 'channels muxwire accepted');
                    const echoed = await within(Promise.all(results), 10_000, 'every echo to finish');
                    assert.equal(
                      echoed.filter(Boolean).length,
                      HELLO_CHANNELS,
                      'channels that echoed exactly hello and closed cleanly',
                    );
                    await within(session.close(), 10_000, 'close()');
                    assert.equal(await within(accepting, 5_000, 'the accepting to stop'), undefined);
                  },
                );
                const fields = expectOk(outcome);
                assert.equal(fields.ok, String(HELLO_CHANNELS));
              },
            );

            test(
              `200 channels dialled by ${PEER}, payloads 0 B to 1 MiB, compared by SHA-256 both ways`,
              { timeout: 120_000 },
              async () => {
                const received: Promise<string>[] = [];
                const outcome = await withOriginal(
                  peer,
                  role,
                  ['-scenario', 'bulk-open', '-count', '200', '-seed', '5'],
                  90_000,
                  'clean',
                  async (session, go) => {
                    const accepting = acceptChannels(session, style, (channel) => {
                      const reader = new ByteReader(channel);
                      const task = (async () => {
                        const data = await reader.readMessage(60_000);
                        channel.write(message(data));
                        await reader.expectEnd(60_000); // the original closes once it has read the echo
                        channel.end();
                        return sha256(data);
                      })();
                      task.catch(() => {});
                      received.push(task);
                    });
                    assert.equal(await peerDone(go, 85_000), 'DONE ok=200');
                    const digests = await within(Promise.all(received), 10_000, 'the echo handlers');
                    assert.deepEqual(digests.sort(), peerDigests(go), 'muxwire received what the original sent');
                    await within(session.close(), 10_000, 'close()');
                    assert.equal(await within(accepting, 5_000, 'the accepting to stop'), undefined);
                  },
                );
                const fields = expectOk(outcome);
                assert.equal(fields.ok, '200', 'every echo the original read back matched what it sent');
              },
            );

            test(
              `${PEER} closes its channels mid-transfer: muxwire gets the bytes sent before the close, then the end; a later write fails with a typed error`,
              { timeout: 60_000 },
              async () => {
                const after = 300_001;
                const outcome = await withOriginal(
                  peer,
                  role,
                  ['-scenario', 'close-mid', '-count', '3', '-size', String(MiB), '-after', String(after)],
                  30_000,
                  'clean',
                  async (session, go) => {
                    const ended: Promise<{ data: Buffer; error: Error | undefined; late: unknown }>[] = [];
                    const accepting = acceptChannels(session, style, (channel) => {
                      ended.push(
                        new Promise((resolve) => {
                          const chunks: Buffer[] = [];
                          let error: Error | undefined;
                          channel.on('data', (chunk: Buffer) => chunks.push(chunk));
                          channel.on('error', (e: Error) => {
                            error ??= e;
                          });
                          // Writing on a channel the original closed fails here, and nothing goes to the original
                          // (data for a channel it closed would end its whole session: its RESULT shows it did not).
                          channel.on('end', () => {
                            const before = error;
                            channel.write('too late', (late) =>
                              resolve({ data: Buffer.concat(chunks), error: before, late }),
                            );
                          });
                        }),
                      );
                    });
                    await peerDone(go, 20_000);
                    await waitUntil(() => ended.length === 3, 5_000, 'three channels');
                    const ends = await within(Promise.all(ended), 10_000, 'the three channels to end');
                    const digests: string[] = [];
                    for (const { data, error, late } of ends) {
                      assert.equal(error, undefined, 'a close in this format is an end, not an error');
                      assert.equal(data.length, 8 + after, 'exactly the bytes written before the close');
                      assert.equal(Number(data.readBigUInt64BE(0)), MiB, 'the announced length');
                      digests.push(sha256(data.subarray(8)));
                      assertTyped(late, "a write after the original's close");
                      assert.equal(late.code, 'ERR_MUX_WRITE_AFTER_END');
                    }
                    assert.deepEqual(digests.sort(), peerDigests(go));
                    await within(session.close(), 10_000, 'close()');
                    assert.equal(await within(accepting, 5_000, 'the accepting to stop'), undefined);
                  },
                );
                const fields = expectOk(outcome);
                assert.equal(fields.closed, '3');
                assert.equal(fields.end, 'peer', "the original's session lived until muxwire closed it");
              },
            );

            test(
              `muxwire closes ${PEER}'s channels mid-transfer: the original's writes fail, its session goes on`,
              { timeout: 60_000 },
              async () => {
                const size = 4 * MiB;
                const outcome = await withOriginal(
                  peer,
                  role,
                  ['-scenario', 'write-until-closed', '-count', '3', '-size', String(size), '-interval', '2ms'],
                  30_000,
                  'clean',
                  async (session, go) => {
                    const cut: Promise<number>[] = [];
                    const accepting = acceptChannels(session, style, (channel) => {
                      const reader = new ByteReader(channel);
                      const task = (async () => {
                        await reader.read(100_000, 20_000);
                        channel.destroy(); // a RST mid-transfer; the format has no other way to stop the writer
                        return reader.total;
                      })();
                      task.catch(() => {});
                      cut.push(task);
                    });
                    assert.equal(await peerDone(go, 25_000), 'DONE closed_early=3');
                    const seen = await within(Promise.all(cut), 5_000, 'the reading handlers');
                    for (const total of seen) assert.ok(total < 8 + size, `${total} bytes read before the close`);
                    // The original's frames still in flight for the closed channels are dropped; the session ends
                    // cleanly (checked after the body).
                    await within(session.close(), 10_000, 'close()');
                    assert.equal(await within(accepting, 5_000, 'the accepting to stop'), undefined);
                  },
                );
                const fields = expectOk(outcome);
                assert.equal(fields.closed_early, '3');
                for (const line of outcome.go.lines('CHANNEL')) {
                  assert.match(line, /outcome=closed/, line);
                  const written = Number(/ written=(\d+)/.exec(line)?.[1]);
                  assert.ok(written < 8 + size, `the original wrote ${written} bytes before its write failed`);
                }
              },
            );

            test(
              `${PEER} ends its session with channels open: every pending muxwire call settles with a typed error`,
              { timeout: 60_000 },
              async () => {
                const sent = 1000;
                const outcome = await withOriginal(
                  peer,
                  role,
                  ['-scenario', 'cut', '-how', 'session', '-count', '3', '-after', String(sent)],
                  30_000,
                  'failed',
                  async (session, go) => {
                    // A channel of muxwire's own, open at the end too: its pending read must fail as well.
                    const own = session.dial();
                    const ownRead = new ByteReader(own).expectError(20_000);
                    ownRead.catch(() => {});
                    own.write('x');
                    const reads: Promise<Error>[] = [ownRead];
                    const accepting = acceptChannels(session, style, (channel) => {
                      const reader = new ByteReader(channel);
                      const task = (async () => {
                        assert.equal((await reader.read(2, 10_000)).toString(), 'go');
                        channel.write(Buffer.alloc(sent, 7));
                        return reader.expectError(20_000); // a read that is pending when the session ends
                      })();
                      task.catch(() => {});
                      reads.push(task);
                    });
                    await waitUntil(() => reads.length === 4, 10_000, "the original's three channels");
                    // The listener style has no pending accept() of its own: make one, now that the three are in.
                    const pendingAccept = style === "'channel' listener" ? session.accept() : accepting;
                    pendingAccept.catch(() => {});
                    assert.equal(await peerDone(go, 20_000), 'DONE ready=3');
                    const closed = await within(
                      session.closed.then(
                        () => undefined,
                        (e: unknown) => e,
                      ),
                      10_000,
                      'the session to end',
                    );
                    assert.ok(closed instanceof TransportClosedError, `the session ended with ${String(closed)}`);
                    for (const error of await within(Promise.all(reads), 5_000, 'the pending reads')) {
                      assertTyped(error, 'a pending read');
                      assert.equal(error.code, 'ERR_MUX_TRANSPORT_CLOSED');
                    }
                    const acceptError = await within(
                      pendingAccept.then(
                        (v) => v,
                        (e: unknown) => e,
                      ),
                      5_000,
                      'the pending accept',
                    );
                    assertTyped(acceptError, `the pending accept (${style})`);
                    assert.throws(
                      () => session.dial(),
                      (error: unknown) => error instanceof MuxError,
                      'dial() after the end',
                    );
                    await assert.rejects(
                      session.accept(),
                      (error: unknown) => error instanceof MuxError,
                      'accept() after the end',
                    );
                  },
                );
                const fields = expectOk(outcome);
                assert.equal(fields.ready, '3');
                assert.equal(fields.inbound, '1', "muxwire's own channel reached the original");
              },
            );

            test(
              `the transport cut mid-transfer (${PEER} resets TCP while muxwire writes): every pending muxwire call settles with a typed error`,
              { timeout: 60_000 },
              async () => {
                const outcome = await withOriginal(
                  peer,
                  role,
                  ['-scenario', 'cut', '-how', 'reset', '-count', '3', '-after', String(65_536)],
                  30_000,
                  'failed',
                  async (session, go) => {
                    const writes: Promise<unknown>[] = [];
                    const own = session.dial(); // muxwire's own channel, open at the cut too
                    const ownRead = new ByteReader(own).expectError(20_000);
                    ownRead.catch(() => {});
                    own.write('x');
                    const reads: Promise<Error>[] = [ownRead];
                    const accepting = acceptChannels(session, style, (channel) => {
                      const reader = new ByteReader(channel);
                      const task = (async () => {
                        assert.equal((await reader.read(2, 10_000)).toString(), 'go');
                        // Far more than the original takes before the cut (after 64 KiB it reads 1 KiB per ms).
                        writes.push(new Promise((resolve) => channel.write(Buffer.alloc(16 * MiB, 1), resolve)));
                        return reader.expectError(20_000);
                      })();
                      task.catch(() => {});
                      reads.push(task);
                    });
                    await waitUntil(() => reads.length === 4, 10_000, "the original's three channels");
                    const pendingAccept = style === "'channel' listener" ? session.accept() : accepting;
                    pendingAccept.catch(() => {});
                    assert.equal(await peerDone(go, 20_000), 'DONE ready=3');
                    const closed = await within(
                      session.closed.then(
                        () => undefined,
                        (e: unknown) => e,
                      ),
                      10_000,
                      'the session to end',
                    );
                    assert.ok(closed instanceof TransportClosedError, `the session ended with ${String(closed)}`);
                    for (const error of await within(Promise.all(writes), 5_000, 'the pending writes')) {
                      assertTyped(error, 'a pending write');
                    }
                    for (const error of await within(Promise.all(reads), 5_000, 'the pending reads')) {
                      assertTyped(error, 'a pending read');
                      assert.equal(error.code, 'ERR_MUX_TRANSPORT_CLOSED');
                    }
                    assertTyped(
                      await within(
                        pendingAccept.then(
                          (v) => v,
                          (e: unknown) => e,
                        ),
                        5_000,
                        'the pending accept',
                      ),
                      `the pending accept (${style})`,
                    );
                    assert.throws(
                      () => session.dial(),
                      (error: unknown) => error instanceof MuxError,
                      'dial() after the cut',
                    );
                  },
                );
                const fields = expectOk(outcome);
                assert.equal(fields.ready, '3');
                assert.equal(fields.inbound, '1', "muxwire's own channel reached the original");
              },
            );
          });
        }
      });
    }
  });
}
