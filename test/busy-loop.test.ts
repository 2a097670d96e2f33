/**
 * Deadlines after a busy event loop: when the process was busy past a deadline (synchronous work, a long GC
 * pause), Node runs the expired timer before it reads what arrived meanwhile. The peer's answer, already in
 * the socket, must count: keep-alive, open and close deadlines are judged after the bytes waiting were read.
 * So must the tunnel command's control messages (src/cli/protocol.ts). The peer runs in another process
 * (test/support/tcp-echo-child.ts), so it answers while this one is busy.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { type Channel, multiplexedClient, type Session } from '../src/index.js';
import { readAll, within } from './helpers.js';
import { encode, readMessage } from '../src/cli/protocol.js';

const CHILD = fileURLToPath(new URL('./support/tcp-echo-child.js', import.meta.url));
const DEADLINE_MS = 300;
const BUSY_MS = 700;

async function echoPeer(): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, [CHILD], {
    env: { ...process.env, MUXWIRE_TCP_ECHO_CHILD: '1' },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const port = await within(
    new Promise<number>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        const match = /PORT (\d+)/.exec(out);
        if (match) resolve(Number(match[1]));
      });
      child.on('exit', (code) => reject(new Error(`the echo peer exited (${code})`)));
    }),
    10_000,
    'the echo peer',
  );
  return { child, port };
}

async function connected(
  port: number,
  options: Parameters<typeof multiplexedClient>[1],
): Promise<{ session: Session; socket: net.Socket }> {
  const socket = net.connect(port, '127.0.0.1');
  await within(
    new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject)),
    5000,
    'connect',
  );
  const session = multiplexedClient(socket, options);
  // The opening ping's answer: the peer is up and the session settled.
  await within(session.ping(), 5000, 'the first ping');
  return { session, socket };
}

/** Blocks the event loop, as a long synchronous job or a GC pause does. */
function busy(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

/** One turn of the event loop: the session's writes made so far are on the wire. */
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

test('a busy event loop', async (t) => {
  const { child, port } = await echoPeer();
  t.after(() => child.kill());

  await t.test('a ping answered while this process was busy past keepAliveTimeout resolves', async () => {
    const { session, socket } = await connected(port, { keepAliveTimeout: DEADLINE_MS });
    try {
      const sentBefore = socket.bytesWritten;
      const rtt = session.ping();
      await turn();
      assert.ok(socket.bytesWritten > sentBefore, 'the ping left before the busy spell');
      busy(BUSY_MS);
      const measured = await within(rtt, 5000, 'the ping');
      assert.ok(measured >= BUSY_MS, `the round trip spans the busy spell (${measured.toFixed(0)} ms)`);
      assert.equal(session.state, 'open');
      assert.equal(session.closeError, undefined);
    } finally {
      session.destroy();
    }
  });

  await t.test(
    'a channel the peer acknowledged and answered while this process was busy past openTimeout opens',
    async () => {
      const { session, socket } = await connected(port, { openTimeout: DEADLINE_MS });
      try {
        const sentBefore = socket.bytesWritten;
        const channel: Channel = session.dial();
        channel.end('hello');
        await turn();
        assert.ok(socket.bytesWritten > sentBefore, 'the SYN and data left before the busy spell');
        busy(BUSY_MS);
        const reply = await within(readAll(channel), 5000, 'the reply');
        assert.equal(reply.toString(), 'hello');
        assert.equal(channel.failure, undefined);
      } finally {
        session.destroy();
      }
    },
  );

  await t.test(
    'close() whose channels the peer closed while this process was busy past the timeout ends cleanly',
    async () => {
      const { session, socket } = await connected(port, {});
      try {
        const channel = session.dial();
        const reply = readAll(channel);
        channel.end('hello');
        // Acknowledged and in use: only the peer's end is still to come when close() starts.
        await within(new Promise<void>((resolve) => channel.once('data', () => resolve())), 5000, 'the echo');
        const sentBefore = socket.bytesWritten;
        const closing = session.close({ timeout: DEADLINE_MS });
        await turn();
        assert.ok(socket.bytesWritten > sentBefore, 'the Go Away left before the busy spell');
        busy(BUSY_MS);
        await within(closing, 5000, 'close()');
        await within(session.closed, 5000, 'session.closed');
        assert.equal(session.closeError, undefined);
        assert.equal((await reply).toString(), 'hello');
      } finally {
        session.destroy();
      }
    },
  );

  await t.test(
    "the tunnel's control message answered on a channel while this process was busy past its timeout is read, not timed out",
    async () => {
      const { session, socket } = await connected(port, {});
      try {
        const channel = session.dial();
        // The echo peer answers the message as the tunnel's server answers a `connect` with `ok`.
        const reading = readMessage(channel, DEADLINE_MS);
        const sentBefore = socket.bytesWritten;
        channel.write(encode({ type: 'ok', port: 7 }));
        await turn();
        assert.ok(socket.bytesWritten > sentBefore, 'the message left before the busy spell');
        busy(BUSY_MS);
        assert.deepEqual(await within(reading, 5000, 'the message'), { type: 'ok', port: 7 });
        // And a message that never comes still times out.
        await assert.rejects(readMessage(channel, DEADLINE_MS), { code: 'ERR_TUNNEL_TIMEOUT' });
      } finally {
        session.destroy();
      }
    },
  );
});
