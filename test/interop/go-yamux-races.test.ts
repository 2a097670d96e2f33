/**
 * The shutdown and keep-alive races of test/shutdown-races.test.ts, with Go's hashicorp/yamux (Debian's 2019
 * snapshot, through the peer in test/interop/go, README-go.md) as the other side, so that what a retrying
 * client relies on holds when the peer is not muxwire. Each scenario runs with muxwire in both roles and
 * loops 100 runs; a run that needs its own Go process gets one, a few at a time.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import {
  type Channel,
  ChannelRefusedError,
  ChannelResetError,
  GoAwayError,
  MuxError,
  type Session,
  SessionClosedError,
  type SessionOptions,
  TimeoutError,
  multiplexedClient,
  multiplexedServer,
} from '../../src/index.js';
import { GoPeer, type GoResult, INSTALL_HINT, prepareGoPeer } from './go-peer.js';
import { MiB, message, payload, waitUntil, within } from './length-prefixed.js';

const RUNS = 100;
const PEER = 'the peer is Go hashicorp/yamux';

const status = await prepareGoPeer();

if (status.kind === 'missing') {
  if (process.env.CI === 'true') {
    test('Go yamux peer prerequisites (races)', () => {
      assert.fail(`the Go yamux race tests cannot run on CI: ${status.what} missing; ${INSTALL_HINT} is needed`);
    });
  } else {
    test('Go yamux races', { skip: `${INSTALL_HINT} is needed (missing: ${status.what})` }, () => {});
  }
} else if (status.kind === 'broken') {
  test('Go yamux peer builds (races)', () => {
    assert.fail(status.message);
  });
} else {
  registerTests(status.path);
}

/** One muxwire session over TCP with a Go peer process; `socket` is the session's transport. */
interface Link {
  go: GoPeer;
  session: Session;
  socket: net.Socket;
  /** Kills the process, destroys the session and the socket; safe to call twice. */
  close: () => void;
}

/**
 * Starts the Go peer with `goArgs` and opens the muxwire session: as the yamux client when `role` is
 * 'client' (Go listens), as the server when it is 'server' (Go dials). The socket is ours, not `connect()`'s,
 * so that a test can see whether the session paused reading it.
 */
async function link(
  peer: string,
  role: 'client' | 'server',
  goArgs: string[],
  options: SessionOptions,
  timeoutMs = 20_000,
): Promise<Link> {
  let go: GoPeer | undefined;
  let socket: net.Socket | undefined;
  let listener: net.Server | undefined;
  try {
    if (role === 'client') {
      go = new GoPeer(peer, ['-mode', 'listen', '-addr', '127.0.0.1:0', ...goArgs], timeoutMs);
      const port = await within(go.port, 10_000, 'the Go peer to listen');
      socket = net.connect(port, '127.0.0.1');
      await within(once(socket, 'connect'), 5_000, 'connecting to the Go peer');
    } else {
      listener = net.createServer();
      listener.listen(0, '127.0.0.1');
      await once(listener, 'listening');
      const arrived = once(listener, 'connection') as Promise<[net.Socket]>;
      const port = (listener.address() as net.AddressInfo).port;
      const started = new GoPeer(peer, ['-mode', 'dial', '-addr', `127.0.0.1:${port}`, ...goArgs], timeoutMs);
      go = started;
      const exitedFirst = started.result.then((r) => {
        throw new Error(`the Go peer finished before connecting: ${r.line}`);
      });
      [socket] = await within(Promise.race([arrived, exitedFirst]), 10_000, 'the Go peer to connect');
    }
  } catch (error) {
    socket?.destroy();
    go?.kill();
    if (error instanceof Error && go !== undefined) error.message += `\n${go.output()}`;
    throw error;
  } finally {
    listener?.close();
  }
  const session = role === 'client' ? multiplexedClient(socket, options) : multiplexedServer(socket, options);
  const [g, s] = [go, socket];
  return {
    go: g,
    session,
    socket: s,
    close(): void {
      session.destroy();
      s.destroy();
      g.kill();
    },
  };
}

/** Runs `count` runs of `run`, `parallel` at a time; a run that throws stops it (with the run's number). */
async function loop<T>(count: number, parallel: number, run: (index: number) => Promise<T>): Promise<T[]> {
  const results: T[] = [];
  for (let start = 0; start < count; start += parallel) {
    const batch = Array.from({ length: Math.min(parallel, count - start) }, (_, i) => start + i);
    results.push(
      ...(await Promise.all(
        batch.map((index) =>
          run(index).catch((error: unknown) => {
            (error as Error).message = `run ${index}: ${(error as Error).message}`;
            throw error;
          }),
        ),
      )),
    );
  }
  return results;
}

/** Asserts that no run reported a problem; the message counts the failing runs and shows the first one's. */
function assertNoProblems(runs: string[][]): void {
  const failing = runs.map((problems, run) => ({ run, problems })).filter((r) => r.problems.length > 0);
  if (failing.length === 0) return;
  const first = failing[0]!;
  assert.fail(
    `${failing.length} of ${runs.length} runs failed; run ${first.run}, ${first.problems.length} problem(s):\n` +
      first.problems.slice(0, 6).join('\n'),
  );
}

/** How one of the peer's streams ended (its STREAM line): `acked` when muxwire's ACK reached it. */
interface StreamLine {
  outcome: string;
  acked: boolean;
}

/** The peer's STREAM lines by stream id. */
function streamOutcomes(go: GoPeer): Map<number, StreamLine> {
  const outcomes = new Map<number, StreamLine>();
  for (const line of go.lines('STREAM')) {
    const id = / id=(\d+)/.exec(line)?.[1];
    const outcome = / outcome=(\S+)/.exec(line)?.[1];
    if (id !== undefined && outcome !== undefined)
      outcomes.set(Number(id), { outcome, acked: line.includes(' acked=true') });
  }
  return outcomes;
}

const describeError = (error: Error | undefined): string =>
  error === undefined ? 'no error' : `${error.name} (${(error as MuxError).code ?? '-'}): ${error.message}`;

interface DialOutcome {
  id: number;
  echoed: boolean;
  error: Error | undefined;
}

/** Dials `count` echo channels, `perMs` each millisecond; resolves with how each ended and the dials that threw. */
async function dialEchoes(
  session: Session,
  count: number,
  perMs: number,
): Promise<{ outcomes: DialOutcome[]; dialErrors: Error[] }> {
  const outcomes: Promise<DialOutcome>[] = [];
  const dialErrors: Error[] = [];
  for (let i = 0; i < count; i += perMs) {
    for (let j = i; j < Math.min(count, i + perMs); j++) {
      let channel: Channel;
      try {
        channel = session.dial();
      } catch (error) {
        dialErrors.push(error as Error);
        continue;
      }
      const request = message(Buffer.from(`hello ${j}`));
      outcomes.push(
        new Promise<DialOutcome>((resolve) => {
          const chunks: Buffer[] = [];
          channel.on('data', (chunk: Buffer) => chunks.push(chunk));
          channel.on('error', () => {});
          channel.on('close', () =>
            resolve({ id: channel.id, echoed: Buffer.concat(chunks).equals(request), error: channel.failure }),
          );
          channel.end(request);
        }),
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  return { outcomes: await Promise.all(outcomes), dialErrors };
}

/**
 * One run: Go accepts and echoes, calls GoAway() after `goAwayAfter` streams, drains the streams it took and
 * closes the connection, while muxwire dials 1,000 echo channels at 5 per ms. Returns what went wrong.
 *
 * With `confirm`, Go pings after its Go Away and closes once we answered, so we have read the Go Away; SYNs of
 * ours may still be on their way and meet the closed socket (a TCP reset). After a Go Away code 0 that end is a
 * clean one for muxwire, and the channels Go never acknowledged are refused (safe to retry). Without `confirm`
 * Go closes as soon as its streams are done: the todo case below.
 */
async function goAwayDuringDials(peer: string, goAwayAfter: number, confirm: boolean): Promise<string[]> {
  const problems: string[] = [];
  const { go, session, close } = await link(
    peer,
    'client',
    [
      '-scenario',
      'graceful',
      '-role',
      'serve',
      '-goaway-after',
      String(goAwayAfter),
      `-confirm=${confirm}`,
      '-keepalive=false',
    ],
    { keepAliveInterval: 0 },
  );
  try {
    const { outcomes, dialErrors } = await within(dialEchoes(session, 1000, 5), 30_000, 'the 1,000 dials to settle');
    const end = await within(
      session.closed.then(
        () => undefined,
        (error: unknown) => error as Error,
      ),
      10_000,
      'the muxwire session to end',
    );
    const result = await within(go.result, 20_000, "the Go peer's RESULT line");
    if (end !== undefined) problems.push(`the session ended with ${describeError(end)}`);
    if (!result.ok) problems.push(`the Go peer failed: ${result.line}`);
    const accepted = streamOutcomes(go);
    for (const error of dialErrors) {
      if (!(error instanceof GoAwayError) && !(error instanceof SessionClosedError)) {
        problems.push(`a dial threw ${describeError(error)}`);
      }
    }
    // Go's Go Away comes long before the 200 ms of dials end: the last ones must have thrown.
    if (dialErrors.length === 0) problems.push("no dial threw after Go's Go Away");
    let echoed = 0;
    for (const outcome of outcomes) {
      if (outcome.echoed && outcome.error === undefined) {
        echoed++;
        if (!accepted.has(outcome.id)) problems.push(`channel ${outcome.id} was echoed, but Go did not report it`);
        continue;
      }
      if (outcome.error instanceof ChannelRefusedError) {
        if (accepted.has(outcome.id))
          problems.push(`channel ${outcome.id} reported refused, but Go's application took it`);
        continue;
      }
      problems.push(`channel ${outcome.id}: ${outcome.echoed ? '' : 'echo wrong, '}${describeError(outcome.error)}`);
    }
    if (echoed !== accepted.size || result.fields.echoed !== String(echoed)) {
      problems.push(`${echoed} echoed; Go accepted ${accepted.size} and echoed ${result.fields.echoed}`);
    }
    if (goAwayAfter > 0 && accepted.size < goAwayAfter) problems.push(`Go accepted only ${accepted.size}`);
    if (problems.length > 0) problems.push(go.output());
    return problems;
  } finally {
    close();
  }
}

/**
 * One run: Go opens 1,000 echo streams at 5 per ms; muxwire echoes and calls close() after accepting 300. Go
 * reports each stream's outcome (echoed, reset, or a session-level end such as EOF or shutdown) and stops
 * opening when OpenStream fails with its Go Away error.
 */
async function closeDuringGoOpens(peer: string): Promise<{ problems: string[]; result: GoResult }> {
  const problems: string[] = [];
  const { go, session, close } = await link(
    peer,
    'server',
    ['-scenario', 'graceful', '-role', 'open', '-count', '1000', '-per-ms', '5', '-keepalive=false'],
    { keepAliveInterval: 0 },
  );
  try {
    const seen = new Set<number>();
    let closing: Promise<void> | undefined;
    session.on('channel', (channel: Channel) => {
      seen.add(channel.id);
      channel.on('error', () => {});
      channel.pipe(channel);
      if (seen.size === 300) closing = session.close();
    });
    const end = await within(
      session.closed.then(
        () => undefined,
        (error: unknown) => error as Error,
      ),
      30_000,
      'the muxwire session to end',
    );
    await closing;
    const result = await within(go.result, 20_000, "the Go peer's RESULT line");
    if (end !== undefined) problems.push(`the session ended with ${describeError(end)}`);
    const outcomes = streamOutcomes(go);
    for (const [id, { outcome, acked }] of outcomes) {
      if (outcome === 'echoed') {
        if (!seen.has(id)) problems.push(`stream ${id} was echoed, but muxwire's application never saw it`);
      } else if (!seen.has(id)) {
        // Refused by muxwire: Go's API cannot tell that from a reset (both are ErrConnectionReset), but it must
        // not be the end of the session, which would leave a client unsure whether the request was taken. On the
        // wire, a refusal is a RST with no ACK before it.
        if (outcome !== 'reset') problems.push(`stream ${id}, never accepted by muxwire, ended with ${outcome}`);
        else if (acked) problems.push(`stream ${id}, never accepted by muxwire, was acknowledged before its RST`);
      } else {
        problems.push(`stream ${id}, accepted and echoed by muxwire, ended with ${outcome}`);
      }
    }
    const echoed = [...outcomes.values()].filter((o) => o.outcome === 'echoed').length;
    if (echoed !== seen.size) problems.push(`muxwire accepted ${seen.size}, Go saw ${echoed} echoed`);
    if (Number(result.fields.opened) !== outcomes.size) {
      problems.push(`Go opened ${result.fields.opened} streams and reported ${outcomes.size}`);
    }
    if (result.fields.open_error !== 'goaway' && result.fields.open_error !== 'closed') {
      problems.push(`Go's opens did not end with the Go Away (open_error=${result.fields.open_error})`);
    }
    if (!result.ok) problems.push(`the Go peer failed: ${result.line}`);
    if (problems.length > 0) problems.push(go.output());
    return { problems, result };
  } finally {
    close();
  }
}

/**
 * One run: the Go peer writes 1 MiB to each of four channels that muxwire never reads, muxwire pauses reading at
 * its 256 KiB bound, then the Go process is frozen (SIGSTOP): the kernel still takes muxwire's pings, nobody
 * answers. Resolves with how the session ended, how a ping() pending meanwhile settled and after how long.
 */
async function frozenWhilePaused(
  peer: string,
  role: 'client' | 'server',
): Promise<{ error: Error | undefined; pingError: unknown; afterMs: number }> {
  const l = await link(peer, role, ['-scenario', 'fill', '-count', '4', '-size', String(MiB), '-keepalive=false'], {
    maxSessionBuffered: 256 * 1024,
    keepAliveInterval: 100,
    keepAliveTimeout: 400,
  });
  try {
    if (role === 'client') {
      for (let i = 0; i < 4; i++)
        l.session
          .dial()
          .on('error', () => {})
          .write(message(Buffer.alloc(0)));
    } else {
      l.session.on('channel', (channel: Channel) => channel.on('error', () => {})); // never read
    }
    await waitUntil(() => l.socket.isPaused(), 10_000, 'muxwire to pause reading at its bound');
    l.go.child.kill('SIGSTOP');
    const frozenAt = performance.now();
    // A ping() shares the answer of one already in flight (a paused session's probe, sent before the freeze and
    // maybe answered): it may resolve; it may not stay pending, or fail with anything but a typed error.
    const ping = l.session.ping().then(
      (rtt) => rtt,
      (error: unknown) => error,
    );
    const error = await within(
      l.session.closed.then(
        () => undefined,
        (e: unknown) => e as Error,
      ),
      15_000,
      'the session to notice the frozen peer',
    );
    return { error, pingError: await ping, afterMs: performance.now() - frozenAt };
  } catch (error) {
    if (error instanceof Error) error.message += `\n${l.go.output()}`;
    throw error;
  } finally {
    l.go.child.kill('SIGCONT');
    l.close();
  }
}

/**
 * One run against the Go peer's late-accept scenario: muxwire dials three channels and sends each request with
 * its FIN at once (`end(request)`); Go takes them only after they all arrived, so it acknowledges none (see
 * the scenario in races.go), and then either replies after `replyAfterMs` or, with 0, shuts down without
 * replying (GoAway(), Close()). Returns what went against the README: a channel reported refused that Go's
 * application took (refusals are promised safe to retry), or, with a reply coming, anything but the reply.
 */
async function lateAccept(
  peer: string,
  role: 'client' | 'server',
  replyAfterMs: number,
  options: SessionOptions,
): Promise<string[]> {
  const problems: string[] = [];
  const { go, session, close } = await link(
    peer,
    role,
    [
      '-scenario',
      'late-accept',
      '-role',
      'serve',
      '-accept-delay',
      '150ms',
      '-reply-after',
      `${replyAfterMs}ms`,
      '-keepalive=false',
    ],
    { keepAliveInterval: 0, ...options },
  );
  try {
    const outcomes = await within(
      Promise.all(
        [0, 1, 2].map((i) => {
          const channel = session.dial();
          const request = Buffer.from(`request ${i} `.repeat(10 + i));
          return new Promise<{ id: number; reply: string; error: Error | undefined; bytes: number }>((resolve) => {
            const chunks: Buffer[] = [];
            channel.on('data', (chunk: Buffer) => chunks.push(chunk));
            channel.on('error', () => {});
            channel.on('close', () =>
              resolve({
                id: channel.id,
                reply: Buffer.concat(chunks).toString(),
                error: channel.failure,
                bytes: request.length,
              }),
            );
            channel.end(request);
          });
        }),
      ),
      15_000,
      'the three channels to end',
    );
    if (replyAfterMs > 0) await within(session.close(), 10_000, 'close()');
    const result = await within(go.result, 15_000, "the Go peer's RESULT line");
    if (!result.ok) problems.push(`the Go peer failed: ${result.line}`);
    if (result.fields.took !== '3') problems.push(`Go took ${result.fields.took} of 3 streams`);
    // Otherwise the run is not about what it is meant to be: a stream Go acknowledged is one it took in time.
    if (result.fields.acks_before_replies !== '0')
      problems.push(`Go acknowledged ${result.fields.acks_before_replies} streams before replying`);
    const took = streamOutcomes(go);
    for (const outcome of outcomes) {
      if (!took.has(outcome.id)) problems.push(`channel ${outcome.id}: Go does not report it taken`);
      if (replyAfterMs > 0) {
        if (outcome.error !== undefined || outcome.reply !== `took ${outcome.bytes}`)
          problems.push(
            `channel ${outcome.id}: reply ${JSON.stringify(outcome.reply)}, ${describeError(outcome.error)}`,
          );
      } else if (outcome.error instanceof ChannelRefusedError || outcome.error === undefined) {
        problems.push(`channel ${outcome.id}, which Go's application took: ${describeError(outcome.error)}`);
      }
    }
    return problems;
  } finally {
    close();
  }
}

function registerTests(peer: string): void {
  describe(`shutdown and keep-alive races, ${PEER} (Debian 0.0+git20190923.df201c7)`, () => {
    describe('a graceful close while the other side opens 1,000 channels', () => {
      // Go confirms, as muxwire's own close() does, that we have read its Go Away before it closes: it pings.
      test(
        `Go GoAway()s after accepting 300 of muxwire's 1,000 dials, drains, pings, closes: each channel is echoed or ChannelRefusedError (never seen by Go, never TransportClosedError), muxwire's session ends cleanly, later dials throw Go Away or closed (${RUNS} runs, ${PEER})`,
        { timeout: 600_000 },
        async () => {
          assertNoProblems(await loop(RUNS, 4, () => goAwayDuringDials(peer, 300, true)));
        },
      );

      test(
        `Go GoAway()s before any channel arrives, pings, closes: muxwire's 1,000 dials are refused or throw Go Away, none fails as a transport error (${RUNS / 4} runs, ${PEER})`,
        { timeout: 300_000 },
        async () => {
          assertNoProblems(await loop(RUNS / 4, 4, () => goAwayDuringDials(peer, 0, true)));
        },
      );

      // Without the ping, Go closes as soon as its streams are done, within about a millisecond of its Go Away,
      // while muxwire still dials: its SYNs, unread in Go's socket or arriving after the close, make Go's kernel
      // answer with a TCP reset. When the Go Away and the reset both land while muxwire is not reading (a loaded
      // machine), and a dial's write comes before the next read, that write fails (EPIPE), Node destroys the
      // socket, and the Go Away waiting unread in the kernel is lost: the session fails with TransportClosedError
      // and its unacknowledged channels with it. Node cannot read what is left after a write error (net.Socket
      // always destroys itself), and writing once per tick does not help (tried), so this stays open (see
      // test/interop/README.md).
      test(
        `Go GoAway()s after accepting 300 of muxwire's 1,000 dials, drains and closes at once: the same outcomes (${RUNS} runs, ${PEER})`,
        {
          timeout: 600_000,
          todo: 'muxwire loses the Go Away to its own failed write (EPIPE) when Go closes right after it',
        },
        async () => {
          assertNoProblems(await loop(RUNS, 4, () => goAwayDuringDials(peer, 300, false)));
        },
      );

      test(
        `muxwire close()s after accepting 300 of Go's 1,000 opens: each Go stream is echoed, reset (never accepted) or not opened (Go Away), none that muxwire never accepted ends with the session (${RUNS} runs, ${PEER})`,
        { timeout: 600_000 },
        async () => {
          const totals = { echoed: 0, reset: 0, unopened: 0 };
          assertNoProblems(
            await loop(RUNS, 4, async () => {
              const { problems, result } = await closeDuringGoOpens(peer);
              totals.echoed += Number(result.fields.echoed);
              totals.reset += Number(result.fields.reset);
              totals.unopened += Number(result.fields.unopened);
              return problems;
            }),
          );
          if (process.env.INTEROP_VERBOSE === '1')
            console.log(`Go's streams over ${RUNS} runs: ${JSON.stringify(totals)}`);
          assert.equal(totals.echoed, RUNS * 300, 'muxwire echoed exactly the 300 it accepted in each run');
        },
      );
    });

    describe('an accepted channel that is read and then reset', () => {
      // Both ways with muxwire as the yamux client and as the server (the stream ids' parity differs): cheap runs.
      for (const role of ['client', 'server'] as const) {
        test(
          `Go accepts, reads the first data, resets: muxwire's dialled channel fails with ChannelResetError, never ChannelRefusedError (${RUNS} runs, muxwire as yamux ${role}, ${PEER})`,
          { timeout: 120_000 },
          async () => {
            // This yamux has no Stream.Reset: the peer writes a raw RST frame (-how raw) after reading the header.
            // AcceptStream() returns only once its ACK (a Window Update with ACK) has been written to the connection,
            // and the RST is injected later at a frame boundary, so on the wire the ACK always precedes the RST.
            const { go, session, close } = await link(
              peer,
              role,
              ['-scenario', 'reset', '-role', 'accept', '-how', 'raw', '-count', String(RUNS), '-reset-after', '0'],
              { keepAliveInterval: 0 },
            );
            try {
              for (let run = 0; run < RUNS; run++) {
                const channel = session.dial();
                channel.on('error', () => {});
                channel.write(message(payload(100)));
                // Not once(channel, 'close'): that rejects on the 'error' event that comes first.
                await within(new Promise((resolve) => channel.on('close', resolve)), 10_000, `run ${run}: the reset`);
                assert.ok(
                  channel.failure instanceof ChannelResetError,
                  `run ${run}: ${describeError(channel.failure)}`,
                );
                assert.ok(
                  !(channel.failure instanceof ChannelRefusedError),
                  `run ${run}: reported refused although Go's application took it`,
                );
              }
              await within(session.close(), 10_000, 'close()');
              const result = await within(go.result, 20_000, "the Go peer's RESULT line");
              assert.ok(result.ok, result.line);
              assert.equal(result.fields.streams, String(RUNS));
            } catch (error) {
              if (error instanceof Error) error.message += `\n${go.output()}`;
              throw error;
            } finally {
              close();
            }
          },
        );

        test(
          `muxwire accepts, reads the first data, destroy()s: every Go stream gets a reset, acknowledged first on the wire (taken, not refused) (${RUNS} runs, muxwire as yamux ${role}, ${PEER})`,
          { timeout: 120_000 },
          async () => {
            // Go's API cannot tell a refused stream from a reset one (both are yamux.ErrConnectionReset), so the peer's
            // tap reports whether muxwire acknowledged each stream: the ACK owed when destroy() came leaves with the
            // RST (one frame, ACK|RST), which Go takes as established, then reset.
            const { go, session, close } = await link(
              peer,
              role,
              ['-scenario', 'reset', '-role', 'open', '-count', String(RUNS), '-size', '100', '-keepalive=false'],
              { keepAliveInterval: 0 },
            );
            try {
              let destroyed = 0;
              session.on('channel', (channel: Channel) => {
                channel.on('error', () => {});
                channel.once('data', () => {
                  // the first data came with the SYN
                  channel.destroy();
                  destroyed++;
                });
              });
              await within(session.closed, 20_000, 'the Go peer to finish and close');
              const result = await within(go.result, 20_000, "the Go peer's RESULT line");
              assert.ok(result.ok, result.line);
              assert.equal(result.fields.resets, String(RUNS));
              assert.equal(destroyed, RUNS);
              // Every stream was reset after muxwire's ACK (on the RST frame itself or before it): on the wire, taken
              // by the application and then reset, not refused.
              const outcomes = [...streamOutcomes(go).values()];
              assert.deepEqual(outcomes, Array<StreamLine>(RUNS).fill({ outcome: 'reset', acked: true }));
            } catch (error) {
              if (error instanceof Error) error.message += `\n${go.output()}`;
              throw error;
            } finally {
              close();
            }
          },
        );
      }
    });

    describe("a request Go's application takes after the request's FIN came (this yamux sends no ACK for it)", () => {
      for (const role of ['client', 'server'] as const) {
        test(
          `Go takes three requests, then GoAway()s and closes without replying: none is ChannelRefusedError, which promises the request is safe to retry (muxwire as ${role}, 5 runs, ${PEER})`,
          {
            timeout: 120_000,
            todo: "a known limit: this yamux's silence cannot be told from a SYN it never read (docs/design.md, 'Sessions ending')",
          },
          async () => {
            assertNoProblems(await loop(5, 5, () => lateAccept(peer, role, 0, {})));
          },
        );
        test(
          `Go takes three requests and replies after 700 ms, past an openTimeout of 300 ms: each reply arrives, no channel is timed out and reset (muxwire as ${role}, 5 runs, ${PEER})`,
          { timeout: 120_000 },
          async () => {
            assertNoProblems(await loop(5, 5, () => lateAccept(peer, role, 700, { openTimeout: 300 })));
          },
        );
      }
    });

    describe('keep-alive while reading is paused at the memory bound', () => {
      for (const role of ['client', 'server'] as const) {
        const who =
          role === 'client'
            ? 'muxwire dials four channels that Go fills'
            : 'Go opens and fills four channels muxwire accepts';
        test(
          `${who}, then Go is frozen: the session fails with ERR_MUX_KEEPALIVE_TIMEOUT and a pending ping() settles (${RUNS} runs, 10 at a time, ${PEER})`,
          { timeout: 300_000 },
          async () => {
            let slowest = 0;
            await loop(RUNS, 10, async (run) => {
              const { error, pingError, afterMs } = await frozenWhilePaused(peer, role);
              assert.ok(
                error instanceof TimeoutError && error.code === 'ERR_MUX_KEEPALIVE_TIMEOUT',
                `run ${run}: the session ended with ${describeError(error)} after ${afterMs.toFixed(0)} ms`,
              );
              assert.ok(
                pingError instanceof MuxError || typeof pingError === 'number',
                `run ${run}: ping() settled with ${String(pingError)}`,
              );
              // A few keepAliveTimeouts (400 ms), with room for a loaded machine; before the fix it never came.
              assert.ok(afterMs < 10_000, `run ${run}: detected after ${afterMs.toFixed(0)} ms`);
              slowest = Math.max(slowest, afterMs);
            });
            if (process.env.INTEROP_VERBOSE === '1') console.log(`slowest detection: ${slowest.toFixed(0)} ms`);
          },
        );
      }
    });
  });
}
