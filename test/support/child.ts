/**
 * Scenarios run in a child process, for what a test cannot check in its own process: that the process exits
 * by itself (nothing left holding it open), and bugs that crash the process. It does nothing unless
 * MUXWIRE_CHILD names a scenario (the test runner also loads every file under test/, as a test file).
 */
import net from 'node:net';
import { once } from 'node:events';
import { connect, createServer, multiplexedClient, multiplexedServer } from '../../src/index.js';
import { memoryPipe } from '../helpers.js';
import { runFaultTrial } from './fault-trial.js';

/** Busy from now for `ms`, as a long synchronous job or a GC pause. */
function busy(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

const scenarios: Record<string, () => Promise<void>> = {
  /**
   * `close({ timeout })` times out, and the application calls `close()` again in the turn between the deadline's
   * timer and its verdict: the process must exit once the session has failed, not `closeTimeout` later.
   */
  async 'close-again-before-the-verdict'() {
    const server = createServer((session) => {
      session.on('channel', (channel) => {
        channel.on('error', () => {});
        channel.resume(); // never ended here: the client's close() must time out
      });
    }).listen(0, '127.0.0.1');
    await once(server, 'listening');
    const session = await connect({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port });
    const channel = session.dial();
    channel.on('error', () => {});
    channel.end('x');
    await new Promise((resolve) => setTimeout(resolve, 50));
    const first = session.close({ timeout: 100 });
    // Due with the close deadline's timer, made right after it: runs in the same timers phase, before the verdict.
    setTimeout(() => void session.close(), 100);
    await first;
    const outcome = await session.closed.then(
      () => 'clean',
      (error: unknown) => (error as { code?: string }).code,
    );
    server.close();
    console.log(JSON.stringify({ outcome }));
  },

  /**
   * An aborted `ping()` to a peer that never answers, over a socket the application unref'd: with nobody
   * waiting, the ping's deadline must not keep the process alive (it exits at once, not `keepAliveTimeout`
   * later).
   */
  async 'aborted-ping-over-an-unrefd-socket'() {
    const peer = net
      .createServer((socket) => {
        socket.on('error', () => {});
        socket.resume(); // reads, never answers
        socket.unref();
      })
      .listen(0, '127.0.0.1');
    await once(peer, 'listening');
    peer.unref();
    const socket = net.connect((peer.address() as net.AddressInfo).port, '127.0.0.1');
    await once(socket, 'connect');
    const session = multiplexedClient(socket, { keepAliveInterval: 0, keepAliveTimeout: 5000 });
    socket.unref();
    const outcome = await session.ping({ signal: AbortSignal.timeout(100) }).then(
      () => 'answered',
      (error: unknown) => (error as Error).name,
    );
    console.log(JSON.stringify({ outcome }));
  },

  /**
   * A dial in the turn between an open deadline's timer and its verdict: once the session is destroyed, no
   * timer of its own runs any more (an untracked one would, and would keep the session reachable until then).
   */
  async 'dial-before-the-open-verdict'() {
    const late: string[] = [];
    let destroyedAt = Infinity;
    const realSetTimeout = globalThis.setTimeout;
    // Every timer made from here on reports a callback that runs after the session was destroyed.
    globalThis.setTimeout = ((callback: () => void, ms?: number) =>
      realSetTimeout(() => {
        if (performance.now() >= destroyedAt) late.push(`a ${ms} ms timer`);
        callback();
      }, ms)) as typeof setTimeout;
    const peer = net
      .createServer((socket) => {
        socket.on('error', () => {});
        socket.resume(); // never answers
      })
      .listen(0, '127.0.0.1');
    await once(peer, 'listening');
    const session = await connect({
      host: '127.0.0.1',
      port: (peer.address() as net.AddressInfo).port,
      keepAliveInterval: 0,
    });
    const dial = (openTimeout: number): void => {
      const channel = session.dial({ openTimeout });
      channel.on('error', () => {});
      channel.write('x');
    };
    dial(100);
    realSetTimeout(() => dial(1000), 100); // right after the open deadline's timer, before its verdict
    realSetTimeout(() => busy(100), 50); // both overdue together, as after a busy spell
    await new Promise((resolve) => realSetTimeout(resolve, 300));
    session.destroy();
    destroyedAt = performance.now();
    await new Promise((resolve) => realSetTimeout(resolve, 1200));
    peer.close();
    console.log(JSON.stringify({ late }));
  },

  /**
   * Application callbacks that throw, run from inside the session (a flowing channel's 'data' listener, write
   * callbacks, a 'timeout' listener): each throw must surface as an uncaught exception, as from a socket's,
   * and leave the session and its other channels working. The process lives on through the throws.
   */
  async 'throwing-application-callbacks'() {
    const uncaught: string[] = [];
    process.on('uncaughtException', (error) => uncaught.push(error.message));
    const report: Record<string, unknown> = {};
    const settle = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
    /** A session pair over memory; `serverEnd` is the server's end of the pipe (destroy it to fail both). */
    const pair = () => {
      const [a, b] = memoryPipe();
      return {
        client: multiplexedClient(a, { keepAliveInterval: 0 }),
        server: multiplexedServer(b, { keepAliveInterval: 0 }),
        serverEnd: b,
      };
    };

    // A 'data' listener that throws once.
    {
      const { client, server } = pair();
      server.on('channel', (channel) => {
        channel.on('error', () => {});
        channel.write('one');
        setTimeout(() => channel.end('two'), 20);
        channel.resume();
      });
      const a = client.dial();
      const b = client.dial();
      const got = { a: '', b: '' };
      let thrown = false;
      a.on('data', (chunk: Buffer) => {
        got.a += chunk.toString();
        if (!thrown) {
          thrown = true;
          throw new Error('data listener');
        }
      });
      b.on('data', (chunk: Buffer) => (got.b += chunk.toString()));
      a.write('x');
      b.write('y');
      await settle(150);
      report.data = { got, state: client.state, closeError: client.closeError?.message, uncaught: uncaught.splice(0) };
      client.destroy();
      server.destroy();
    }

    // A write callback that throws, in the same batch as other channels' writes; then its channel's end().
    {
      const { client, server } = pair();
      const events: string[] = [];
      server.on('channel', (channel) => {
        channel.on('error', () => {});
        channel.on('end', () => events.push(`${channel.id === a.id ? 'a' : 'b'} ended at the peer`));
        channel.resume();
      });
      const a = client.dial();
      const b = client.dial();
      a.write('a', () => {
        throw new Error('write callback');
      });
      a.end(() => events.push('a finished'));
      b.write('b', () => events.push('b written'));
      b.end(() => events.push('b finished'));
      await settle(100);
      report.batch = { events: events.sort(), uncaught: uncaught.splice(0) };
      client.destroy();
      server.destroy();
    }

    // `destroy()` with a queued write whose callback throws its error.
    {
      const { client, server } = pair();
      const a = client.dial();
      const b = client.dial();
      for (const channel of [a, b]) channel.on('error', () => {});
      a.write('queued', (error) => {
        if (error) throw error;
      });
      let closeEvents = 0;
      client.on('close', () => closeEvents++);
      client.destroy();
      const closed = await Promise.race([
        client.closed.then(
          () => 'settled',
          () => 'settled',
        ),
        settle(200),
      ]);
      await settle(20);
      report.destroy = {
        closed: closed ?? 'pending',
        closeEvents,
        channelCount: client.channelCount,
        bDestroyed: b.destroyed,
        uncaught: uncaught.splice(0).length,
      };
      server.destroy();
    }

    // Open timeouts failing two dials, the first with a queued write whose callback throws its error.
    {
      const [a, b] = memoryPipe();
      b.on('data', () => {}); // a peer that reads and never answers
      const client = multiplexedClient(a, { keepAliveInterval: 0 });
      const started = performance.now();
      const failedAt: Record<string, number> = {};
      for (const [name, openTimeout] of [
        ['A', 100],
        ['B', 100],
        ['C', 300],
      ] as const) {
        const channel = client.dial({ openTimeout });
        channel.on('error', () => (failedAt[name] = Math.round(performance.now() - started)));
        // More than the peer's window, so that part of the write is still queued when the deadline fails it.
        if (name === 'A')
          channel.write(Buffer.alloc(300 * 1024), (error) => {
            if (error) throw error;
          });
      }
      await settle(600);
      report.openTimeout = { failedAt, uncaught: uncaught.splice(0).length };
      client.destroy();
      b.destroy();
    }

    // A 'timeout' listener that throws the first time.
    {
      const { client, server } = pair();
      server.on('channel', (channel) => {
        channel.on('error', () => {});
        channel.resume();
      });
      const channel = client.dial();
      let timeouts = 0;
      channel.setTimeout(40);
      channel.on('timeout', () => {
        if (++timeouts === 1) throw new Error('timeout listener');
      });
      await settle(100); // the first 'timeout'
      channel.write('activity');
      await settle(120); // idle again: a second one
      report.timeout = { timeouts, uncaught: uncaught.splice(0) };
      client.destroy();
      server.destroy();
    }

    // An 'end' listener that throws, on a channel kept to be read after its session failed (the reply and the
    // peer's FIN were there, unread): the channel still fails, closes and calls back its end().
    {
      const { client, server, serverEnd } = pair();
      server.on('channel', (channel) => {
        channel.on('error', () => {});
        channel.resume();
        channel.end('reply');
      });
      const channel = client.dial();
      const events: string[] = [];
      channel.on('error', () => {});
      // Listening for 'end' before the session fails: the channel's own listener comes after it.
      channel.on('end', () => {
        events.push('end');
        throw new Error('end listener');
      });
      channel.on('close', () => events.push('close'));
      channel.pause();
      channel.write('request');
      await settle(50); // the reply and its FIN wait unread
      serverEnd.destroy();
      await settle(50);
      channel.end(() => events.push('end callback'));
      channel.resume();
      await settle(100);
      report.keptEnd = { events: events.sort(), destroyed: channel.destroyed, uncaught: uncaught.splice(0) };
      client.destroy();
      server.destroy();
    }

    // An empty write's callback that throws: an uncaught exception too, not a rejected promise's (which Node
    // may only warn of, or drop, by its --unhandled-rejections mode).
    {
      const { client, server } = pair();
      const rejected: string[] = [];
      const onRejection = (error: unknown): number => rejected.push((error as Error).message);
      process.on('unhandledRejection', onRejection);
      server.on('channel', (channel) => {
        channel.on('error', () => {});
        channel.resume();
      });
      const channel = client.dial();
      channel.write('x');
      channel.write(Buffer.alloc(0), () => {
        throw new Error('empty write callback');
      });
      await settle(50);
      process.off('unhandledRejection', onRejection);
      report.emptyWrite = { uncaught: uncaught.splice(0), rejected };
      client.destroy();
      server.destroy();
    }

    // A 'readable' listener that throws at the peer's FIN (Node runs it inside push(null)).
    {
      const { client, server } = pair();
      server.on('channel', (channel) => {
        channel.on('error', () => {});
        channel.resume();
        channel.end('bye');
      });
      const a = client.dial();
      const b = client.dial();
      let bGot = '';
      a.on('readable', () => {
        while (a.read() !== null);
        if (a.readableEnded || a.readableLength === 0) throw new Error('readable listener');
      });
      b.on('data', (chunk: Buffer) => (bGot += chunk.toString()));
      a.write('x');
      b.write('y');
      await settle(150);
      report.readable = {
        state: client.state,
        closeError: client.closeError?.message,
        bGot,
        uncaught: uncaught.splice(0, 1),
      };
      client.destroy();
      server.destroy();
    }
    console.log(JSON.stringify(report));
  },

  /** Fault trials, then return: the process must exit on its own. */
  /**
   * A session's 'close' listener throws with `queueMicrotask` faked (Jest's default fake timers hold its tasks
   * until the test runs the clock): the exception must still surface as uncaught, here ending the process.
   */
  async 'listener-throws-under-faked-queueMicrotask'() {
    const FakeTimers = (await import('@sinonjs/fake-timers')).default;
    const [a, b] = memoryPipe();
    const client = multiplexedClient(a, { keepAliveInterval: 0 });
    multiplexedServer(b, { keepAliveInterval: 0 });
    FakeTimers.withGlobal(globalThis).install({ toFake: ['queueMicrotask'] });
    client.once('close', () => {
      throw new Error('a failed assertion in a listener');
    });
    client.destroy();
    await new Promise((resolve) => setTimeout(resolve, 100));
    process.stdout.write('lived on\n');
  },
  async 'fault-trials'() {
    const first = Number(process.env.MUXWIRE_CHILD_SEED ?? 1);
    const count = Number(process.env.MUXWIRE_CHILD_TRIALS ?? 3);
    const problems: string[] = [];
    for (let seed = first; seed < first + count; seed++) {
      const outcome = await runFaultTrial(seed);
      problems.push(...outcome.problems.map((p) => `seed ${seed}: ${p}`));
    }
    console.log(JSON.stringify({ trials: count, problems }));
  },

  /** A channel with a write pending and no 'error' listener; the peer resets it. */
  async 'unobserved-reset-with-pending-write'() {
    const [a, b] = memoryPipe();
    const client = multiplexedClient(a, { keepAliveInterval: 0 });
    const server = multiplexedServer(b, { keepAliveInterval: 0 });
    let inbound: import('../../src/index.js').Channel | undefined;
    server.on('channel', (channel) => {
      inbound = channel;
    });
    const channel = client.dial();
    channel.write(Buffer.alloc(1024 * 1024)); // beyond the window: most of it stays queued
    await new Promise((resolve) => setTimeout(resolve, 50));
    inbound?.destroy();
    await new Promise((resolve) => setTimeout(resolve, 50));
    console.log(JSON.stringify({ closed: channel.closed, failure: channel.failure?.constructor.name ?? null }));
    client.destroy();
    server.destroy();
  },

  /** A channel with a write pending and no 'error' listener; the session's transport goes away. */
  async 'unobserved-session-failure-with-pending-write'() {
    const [a, b] = memoryPipe();
    const client = multiplexedClient(a, { keepAliveInterval: 0 });
    const server = multiplexedServer(b, { keepAliveInterval: 0 });
    server.on('channel', () => {});
    const channel = client.dial();
    channel.write(Buffer.alloc(1024 * 1024));
    await new Promise((resolve) => setTimeout(resolve, 50));
    server.destroy();
    await new Promise((resolve) => setTimeout(resolve, 50));
    console.log(JSON.stringify({ closed: channel.closed, failure: channel.failure?.constructor.name ?? null }));
    client.destroy();
  },
};

const name = process.env.MUXWIRE_CHILD;
if (name !== undefined && name !== '') {
  const scenario = scenarios[name];
  if (scenario === undefined) throw new Error(`unknown child scenario ${name}`);
  await scenario();
}

/** Runs a scenario in a child process; resolves to its exit code, output and how long it took to exit. */
export async function runChild(
  scenario: string,
  env: Record<string, string> = {},
  timeoutMs = 30_000,
): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; ms: number }> {
  const { spawn } = await import('node:child_process');
  const { fileURLToPath } = await import('node:url');
  const started = performance.now();
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url)], {
    env: { ...process.env, ...env, MUXWIRE_CHILD: scenario },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => {
    child.on('close', (c, s) => resolve([c, s]));
  });
  clearTimeout(timer);
  return { code, signal, stdout, stderr, ms: performance.now() - started };
}
