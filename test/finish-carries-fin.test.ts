/**
 * A channel's end is complete, for the application, only once its FIN reached the transport: `'finish'` (Node
 * `Channel`, `LightChannel`) and the writable's `close()` (`WebChannel`) wait for it, as a socket's `'finish'`
 * waits for its shutdown (libp2p's `close()` resolves once the data reached the connection with the FIN queued,
 * as libp2p's yamux does). So "send the file, end the channel, then end the connection" (in
 * the `'finish'` listener, or right after the close resolves) gives the peer every byte and then the end, never
 * a cut connection. (Destroying a TCP connection instead of ending it may still lose what the kernel holds: with
 * bytes unread on it, the kernel resets the connection.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Duplex } from 'node:stream';
import { type Channel, type LightChannel, lightServer, multiplexedClient, multiplexedServer } from '../src/index.js';
import { duplexTransport } from '../src/node/transport.js';
import { WebSession } from '../src/web/session.js';
import { Flag } from '../src/core/frame.js';
import { memoryPipe, parseFrames, pseudoRandomBytes, tcpPair, within } from './helpers.js';

const FILE = pseudoRandomBytes(1 << 20, 26);
const WAIT_MS = 10_000;

type ServerKind = 'Node Channel' | 'LightChannel' | 'WebChannel';
const KINDS: ServerKind[] = ['Node Channel', 'LightChannel', 'WebChannel'];

/**
 * A server session on `socket` that answers the first channel's first bytes with FILE and ends the channel;
 * `ended` is called once the channel's end is complete ('finish', or the writable's close resolved).
 */
function fileServer(kind: ServerKind, socket: Duplex, ended: (channelId: number) => void): { destroy(): void } {
  if (kind === 'Node Channel') {
    const session = multiplexedServer(socket);
    session.on('channel', (channel) => {
      channel.on('error', () => {});
      channel.once('data', () => channel.end(FILE, () => ended(channel.id)));
    });
    return session;
  }
  if (kind === 'LightChannel') {
    const session = lightServer(socket);
    session.on('channel', (channel) => {
      channel.on('error', () => {});
      channel.once('data', () => {
        channel.once('finish', () => ended(channel.id));
        channel.end(FILE);
      });
    });
    return session;
  }
  const session = new WebSession(duplexTransport(socket), 'server');
  session.on('channel', (channel) => {
    void (async () => {
      await channel.readable.getReader().read();
      const writer = channel.writable.getWriter();
      void writer.write(FILE);
      await writer.close();
      ended(channel.id);
    })().catch(() => {});
  });
  return session;
}

/** What the client reads from one channel it dials: the bytes, and how the channel ended. */
async function clientReads(socket: Duplex): Promise<{ bytes: Buffer; outcome: string }> {
  const session = multiplexedClient(socket);
  const channel = session.dial();
  channel.write('GET');
  const chunks: Buffer[] = [];
  const outcome = await within(
    new Promise<string>((resolve) => {
      channel.on('data', (chunk: Buffer) => chunks.push(chunk));
      channel.on('end', () => resolve('end'));
      channel.on('error', (error: Error & { code?: string }) => resolve(`error ${error.code ?? error.message}`));
    }),
    WAIT_MS,
    'the channel to end',
  );
  session.destroy();
  return { bytes: Buffer.concat(chunks), outcome };
}

for (const kind of KINDS) {
  test(`${kind}: the file, the channel's end, then the socket's end at once: the peer reads the file and the end`, async () => {
    const [clientSocket, serverSocket] = await tcpPair();
    const server = fileServer(kind, serverSocket, () => serverSocket.end());
    const { bytes, outcome } = await clientReads(clientSocket);
    assert.equal(outcome, 'end');
    assert.ok(bytes.equals(FILE), 'every byte, in order');
    server.destroy();
  });

  test(`${kind}: when the end is complete, the FIN has been written to the transport`, async () => {
    const [clientEnd, serverEnd] = memoryPipe();
    const written: Buffer[] = [];
    const write = serverEnd._write.bind(serverEnd);
    serverEnd._write = (chunk: Buffer, encoding, callback) => {
      written.push(Buffer.from(chunk));
      write(chunk, encoding, callback);
    };
    let finWritten: boolean | undefined;
    const server = fileServer(kind, serverEnd, (id) => {
      finWritten = parseFrames(Buffer.concat(written)).some(
        (frame) => frame.streamId === id && (frame.flags & Flag.fin) !== 0,
      );
      server.destroy(); // abrupt: what the transport has not been given is lost
    });
    const { bytes, outcome } = await clientReads(clientEnd);
    assert.equal(finWritten, true, 'the FIN was written before the end was reported');
    assert.equal(outcome, 'end');
    assert.ok(bytes.equals(FILE), 'every byte, in order');
  });
}

/** The peer (a Node session on `client`) dials a channel and sends `text` with its FIN. */
function peerSends(client: Duplex, text: string): void {
  const channel = multiplexedClient(client, { keepAliveInterval: 0 }).dial();
  channel.on('error', () => {});
  channel.end(text);
}

/** Starts reading `channel` only 50 ms from now (what arrived waits for the reader), recording it in `seen`. */
function readLater(channel: Channel | LightChannel, seen: string[]): void {
  setTimeout(() => {
    channel.on('data', (data: Uint8Array) => seen.push(`data ${Buffer.from(data).toString()}`));
    channel.on('end', () => seen.push('end'));
  }, 50);
}

/** A pipe whose server end's writes fail (EPIPE, a tick later) once `fail()` was called. */
function failingPipe(): { client: Duplex; server: Duplex; fail: () => void } {
  const [client, server] = memoryPipe();
  let failing = false;
  const write = server._write.bind(server);
  server._write = (chunk: Buffer, encoding, callback) => {
    if (failing) setImmediate(() => callback(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' })));
    else write(chunk, encoding, callback);
  };
  return { client, server, fail: () => (failing = true) };
}

for (const kind of ['Node Channel', 'LightChannel'] as const) {
  test(`${kind}: the peer's data and FIN came, then the write of this side's FIN fails: the data is still read to its end, then the error`, async () => {
    const { client, server, fail } = failingPipe();
    const options = { keepAliveInterval: 0 };
    const session = kind === 'Node Channel' ? multiplexedServer(server, options) : lightServer(server, options);
    const seen: string[] = [];
    const closed = new Promise<void>((resolve) => {
      session.on('channel', (channel: Channel | LightChannel) => {
        channel.on('error', (error: Error & { code?: string }) => seen.push(`error ${error.code}`));
        channel.on('finish', () => seen.push('finish'));
        channel.on('close', () => resolve());
        fail(); // the transport fails from here on
        channel.end();
        readLater(channel, seen);
      });
    });
    peerSends(client, 'hello');
    await within(closed, WAIT_MS, 'the channel to close');
    assert.deepEqual(seen, ['data hello', 'end', 'error ERR_MUX_TRANSPORT_CLOSED']);
  });
}

test("WebChannel: the write of this side's FIN fails after the channel left its session: the writable's close() rejects (it had never settled)", async () => {
  const { client, server, fail } = failingPipe();
  const session = new WebSession(duplexTransport(server), 'server', { keepAliveInterval: 0 });
  session.closed.catch(() => {});
  const outcome = new Promise<string>((resolve) => {
    session.on('channel', (channel) => {
      void (async () => {
        const reader = channel.readable.getReader();
        let text = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          text += Buffer.from(value).toString();
        }
        fail();
        await channel.writable.getWriter().close();
        return `read ${text}; close() resolved`;
      })().then(resolve, (error: unknown) => resolve(`close() rejected ${(error as { code?: string }).code}`));
    });
  });
  peerSends(client, 'hello');
  assert.equal(await within(outcome, WAIT_MS, "the writable's close()"), 'close() rejected ERR_MUX_TRANSPORT_CLOSED');
});

test("Node Channel without an 'error' listener, read to its end, whose FIN's write fails after it left its session: it closes with the failure, and nothing is thrown", async () => {
  const { client, server, fail } = failingPipe();
  const session = multiplexedServer(server, { keepAliveInterval: 0 });
  const uncaught: unknown[] = [];
  let endError: Error | undefined;
  const onUncaught = (error: unknown): void => void uncaught.push(error);
  process.on('uncaughtException', onUncaught);
  try {
    const closed = new Promise<Channel>((resolve) => {
      session.on('channel', (channel) => {
        channel.resume();
        channel.on('end', () => {
          fail();
          // Its FIN leaves the channel's session (both FINs exchanged), then its write fails.
          channel.end((error?: Error | null) => (endError = error ?? undefined));
        });
        channel.on('close', () => resolve(channel));
      });
    });
    peerSends(client, 'request');
    const done = await within(closed, WAIT_MS, 'the channel to close');
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(uncaught, []);
    assert.equal((done.failure as { code?: string } | undefined)?.code, 'ERR_MUX_TRANSPORT_CLOSED');
    assert.equal((endError as { code?: string } | undefined)?.code, 'ERR_MUX_TRANSPORT_CLOSED', "end()'s callback");
  } finally {
    process.off('uncaughtException', onUncaught);
  }
});

test('LightChannel: several writes then the FIN, all failing after the channel left its session: what came is still read, then the error', async () => {
  const { client, server, fail } = failingPipe();
  const session = lightServer(server, { keepAliveInterval: 0 });
  const seen: string[] = [];
  const closed = new Promise<void>((resolve) => {
    session.on('channel', (channel) => {
      channel.on('error', (error: Error & { code?: string }) => seen.push(`error ${error.code}`));
      channel.on('close', () => resolve());
      setTimeout(() => {
        fail();
        channel.write(new Uint8Array([1]));
        channel.write(new Uint8Array([2]));
        channel.end();
        readLater(channel, seen);
      }, 20);
    });
  });
  peerSends(client, 'hello');
  await within(closed, WAIT_MS, 'the channel to close');
  assert.deepEqual(seen, ['data hello', 'end', 'error ERR_MUX_TRANSPORT_CLOSED']);
});

test("WebChannel: closeWrite() with a writer holding the writable, then the FIN's write fails: closeWrite() again and the writer's close() reject", async () => {
  const { client, server, fail } = failingPipe();
  const session = new WebSession(duplexTransport(server), 'server', { keepAliveInterval: 0 });
  session.closed.catch(() => {});
  const outcome = new Promise<string[]>((resolve) => {
    session.on('channel', (channel) => {
      void (async () => {
        const reader = channel.readable.getReader();
        while (!(await reader.read()).done);
        const writer = channel.writable.getWriter();
        fail();
        const code = (error: unknown): string => `rejected ${(error as { code?: string }).code}`;
        const first = channel.closeWrite();
        const meanwhile = channel.closeWrite().then(() => 'resolved', code); // (while the first is pending)
        await first;
        await new Promise((r) => setTimeout(r, 50)); // the FIN's write has failed by now
        const again = await channel.closeWrite().then(() => 'resolved', code);
        const closing = await within(writer.close(), WAIT_MS, "the writer's close()").then(() => 'resolved', code);
        return [await meanwhile, again, closing, `failure ${(channel.failure as { code?: string } | undefined)?.code}`];
      })().then(resolve);
    });
  });
  peerSends(client, 'hello');
  assert.deepEqual(await within(outcome, WAIT_MS, 'the outcome'), [
    'resolved', // as the first: once the FIN was queued behind the writes made before it
    'rejected ERR_MUX_TRANSPORT_CLOSED',
    'rejected ERR_MUX_TRANSPORT_CLOSED',
    'failure ERR_MUX_TRANSPORT_CLOSED',
  ]);
});
