/**
 * Channels standing in for sockets to a real server (Debian's redis-server), as client libraries written for
 * `net.connect` use them (pg's `stream`, mysql2's `stream`, ioredis' connector, ssh2's `sock`): the far end of
 * each channel is forwarded to redis, half-close carried both ways, as the tunnel does. Such a library learns
 * from the socket's `'close'` that the server ended the connection. Everything on 127.0.0.1, ports from the OS.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { type Channel, type Session, connect, createServer } from '../src/index.js';
import { freePort, requirePrograms, startProgram, stopProgram } from './cli/harness.js';
import { until, within } from './helpers.js';

const haveRedis = requirePrograms('channels as sockets to redis-server', ['redis-server'], 'redis-server');

/** Reads from `channel` until what came contains `text`; bounded by `ms`. */
async function readUntil(channel: Channel, text: string, ms = 5_000): Promise<string> {
  let seen = '';
  const found = new Promise<string>((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      seen += chunk.toString('latin1');
      if (!seen.includes(text)) return;
      channel.off('data', onData);
      channel.pause();
      resolve(seen);
    };
    channel.on('data', onData);
    channel.once('error', reject);
  });
  return within(found, ms, `waiting for ${JSON.stringify(text)}; got ${JSON.stringify(seen)}`);
}

/** Sends one command on a plain TCP connection to redis and resolves to its reply. */
function redisCommand(port: number, command: string): Promise<string> {
  return within(
    new Promise<string>((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('error', reject);
      socket.once('data', (reply) => {
        socket.destroy();
        resolve(reply.toString('latin1'));
      });
      socket.write(command);
    }),
    5_000,
    `redis reply to ${command.trim()}`,
  );
}

if (haveRedis) {
  describe('channels as sockets to redis-server', { timeout: 60_000 }, () => {
    let redis: ChildProcess | undefined;
    let redisPort = 0;
    let muxServer: net.Server | undefined;
    let farSessions: Session[] = [];
    let session: Session;

    before(async () => {
      redisPort = await freePort();
      redis = await startProgram(
        'redis-server',
        ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
        redisPort,
      );
      // The far end: each channel forwarded to redis, each side's end (FIN) carried to the other.
      muxServer = createServer((far) => {
        farSessions.push(far);
        far.on('channel', (channel) => {
          const socket = net.connect({ port: redisPort, host: '127.0.0.1', allowHalfOpen: true });
          socket.on('error', () => channel.destroy());
          channel.on('error', () => socket.destroy());
          channel.pipe(socket);
          socket.pipe(channel);
        });
      });
      muxServer.listen(0, '127.0.0.1');
      await once(muxServer, 'listening');
      session = await connect({ host: '127.0.0.1', port: (muxServer.address() as AddressInfo).port });
    });

    after(async () => {
      session.destroy();
      for (const far of farSessions) far.destroy();
      farSessions = [];
      muxServer?.close();
      await stopProgram(redis);
    });

    test("dial({ allowHalfOpen: false }): after redis answers QUIT and closes, the channel ends its side and emits 'close', as a socket from net.connect", async () => {
      const channel = session.dial({ allowHalfOpen: false });
      const closed = once(channel, 'close');
      channel.write('PING\r\n');
      assert.match(await readUntil(channel, '\r\n'), /^\+PONG\r\n$/);
      channel.resume();
      channel.write('QUIT\r\n');
      await within(closed, 5_000, "the channel's 'close' after redis closed");
      assert.equal(channel.allowHalfOpen, false);
      assert.equal(channel.writableEnded, true, 'its writing ended by itself');
      assert.equal(channel.failure, undefined, 'closed cleanly, not reset');
      await until(() => session.channelCount === 0 && farSessions.every((far) => far.channelCount === 0), 5_000);
    });

    test("dial({ allowHalfOpen: false }): a server-side CLIENT KILL closes the channel (a client library hears 'close' and reconnects)", async () => {
      const channel = session.dial({ allowHalfOpen: false });
      const closed = once(channel, 'close');
      channel.write('CLIENT SETNAME killed-through-muxwire\r\n');
      assert.match(await readUntil(channel, '\r\n'), /^\+OK\r\n$/);
      channel.resume();
      const list = await redisCommand(redisPort, 'CLIENT LIST\r\n');
      const id = /id=(\d+) [^\n]*name=killed-through-muxwire/.exec(list)?.[1];
      assert.ok(id !== undefined, `the channel's redis client is listed:\n${list}`);
      assert.match(await redisCommand(redisPort, `CLIENT KILL ID ${id}\r\n`), /^:1\r\n$/);
      await within(closed, 5_000, "the channel's 'close' after CLIENT KILL");
      assert.equal(channel.failure, undefined);
      await until(() => session.channelCount === 0 && farSessions.every((far) => far.channelCount === 0), 5_000);
    });

    test("by default a channel stays open for writing after redis closes (half-close): 'close' only once this side ends too", async () => {
      const channel = session.dial();
      let closedEarly = false;
      channel.once('close', () => (closedEarly = true));
      const ended = once(channel, 'end');
      channel.write('QUIT\r\n');
      assert.match(await readUntil(channel, '\r\n'), /^\+OK\r\n$/);
      channel.resume();
      await within(ended, 5_000, "the channel's 'end' after redis closed");
      // The far side's FIN came and was read; nothing ends this side's writing but the application.
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.equal(closedEarly, false, 'still open: the peer ended, this side did not');
      assert.equal(channel.readyState, 'writeOnly');
      assert.equal(session.channelCount, 1);
      const closed = once(channel, 'close');
      channel.end();
      await within(closed, 5_000, "the channel's 'close' after end()");
      await until(() => session.channelCount === 0, 5_000);
    });

    test('dial() refuses an allowHalfOpen that is not a boolean, opening nothing', () => {
      const before = session.channelCount;
      assert.throws(() => session.dial({ allowHalfOpen: 'no' as unknown as boolean }), {
        name: 'TypeError',
        message: /allowHalfOpen must be true or false/,
      });
      assert.equal(session.channelCount, before);
    });
  });
}
