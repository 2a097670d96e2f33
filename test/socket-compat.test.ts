/**
 * Channels where Node code expects a socket: node:http's keep-alive agent and server, undici's `connect`
 * option, node:http2 (a gRPC-style long-lived bidirectional stream), and the `net.Socket` members they touch.
 * Every test runs the real client and server from Node or npm over a muxwire session on loopback TCP.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import tls from 'node:tls';
import { once } from 'node:events';
import { Client } from 'undici';
import { type Channel, GoAwayError, type Session } from '../src/index.js';
import { memoryPipe, readAll, sessionPair, until, within } from './helpers.js';
import { multiplexedClient, multiplexedServer } from '../src/index.js';
import { ReceiveWindow } from '../src/core/flow.js';
import { selfSignedCertificate } from './support/self-signed.js';

/** An HTTP server fed by a muxwire session's channels; records which channel served each request. */
function httpOverChannels(
  server: Session,
  options: http.ServerOptions = {},
): { http: http.Server; channelOf: string[] } {
  const channelOf: string[] = [];
  const httpServer = http.createServer(options, (req, res) => {
    channelOf.push(String((req.socket as unknown as Channel).id));
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => res.end(`${req.method} ${req.url} ${body}`));
  });
  server.on('channel', (channel) => httpServer.emit('connection', channel));
  return { http: httpServer, channelOf };
}

function get(agent: http.Agent, path: string): Promise<{ body: string; connection: string | undefined }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: 'muxwire.invalid', path, agent }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ body, connection: res.headers.connection }));
        res.on('error', reject);
      })
      .on('error', reject);
  });
}

test('http.Agent({ keepAlive: true }) over channels reuses one channel for many requests', async () => {
  const pair = await sessionPair({ transport: 'tcp' });
  const { http: httpServer, channelOf } = httpOverChannels(pair.server);
  let dials = 0;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  // The agent asks for a socket; a channel is one (setKeepAlive, unref, setTimeout are what it calls).
  (agent as unknown as { createConnection: () => Channel }).createConnection = () => {
    dials++;
    return pair.client.dial();
  };
  try {
    for (let i = 0; i < 20; i++) {
      const reply = await get(agent, `/r${i}`);
      assert.equal(reply.body, `GET /r${i} `);
      assert.equal(reply.connection, 'keep-alive');
    }
    assert.equal(dials, 1, 'the agent dialled once');
    assert.equal(channelOf.length, 20);
    assert.equal(new Set(channelOf).size, 1, 'every request was served on the same channel');
    assert.equal(pair.server.channelCount, 1);
  } finally {
    agent.destroy();
    httpServer.close();
    await pair.close();
  }
});

test("http.createServer's keep-alive timeout ends an idle channel through setTimeout and 'timeout'", async () => {
  const pair = await sessionPair({ transport: 'tcp' });
  // The server arms the socket's idle timeout after each response and destroys the socket when it fires.
  const { http: httpServer } = httpOverChannels(pair.server, { keepAliveTimeout: 200 });
  const agent = new http.Agent({ keepAlive: true });
  let channel: Channel | undefined;
  (agent as unknown as { createConnection: () => Channel }).createConnection = () => (channel = pair.client.dial());
  try {
    assert.equal((await get(agent, '/once')).body, 'GET /once ');
    assert.ok(channel !== undefined);
    await until(() => channel!.destroyed, 10_000, 'the idle channel to close');
    await until(
      () => pair.client.channelCount === 0 && pair.server.channelCount === 0,
      10_000,
      'both sessions to drop it',
    );
  } finally {
    agent.destroy();
    httpServer.close();
    await pair.close();
  }
});

/** The README's `createConnection` for a keep-alive agent: channels that end on the server's FIN, and no throw. */
function agentOver(session: Session, options: http.AgentOptions = {}): http.Agent & { dials: number } {
  const agent = Object.assign(new http.Agent({ keepAlive: true, ...options }), { dials: 0 });
  agent.createConnection = (_options, callback) => {
    try {
      const channel = session.dial();
      channel.allowHalfOpen = false;
      agent.dials++;
      return channel;
    } catch (error) {
      process.nextTick(() => callback?.(error as Error, undefined as never));
      return undefined;
    }
  };
  return agent;
}

test("a keep-alive agent's channel that the server ended (FIN) leaves the pool: the next request gets a new one", async () => {
  const pair = await sessionPair({ transport: 'tcp' });
  let served = 0;
  const httpServer = http.createServer((req, res) => {
    res.end(`reply ${++served}`);
    // As a proxy or another server closing an idle connection: a FIN, not a reset.
    if (served === 1) setTimeout(() => req.socket.end(), 50);
  });
  pair.server.on('channel', (channel) => httpServer.emit('connection', channel));
  const agent = agentOver(pair.client);
  try {
    assert.equal((await get(agent, '/1')).body, 'reply 1');
    await until(
      () => pair.server.channelCount === 0 && pair.client.channelCount === 0,
      5000,
      'the ended channel closed',
    );
    assert.equal((await within(get(agent, '/2'), 5000, 'the second request')).body, 'reply 2');
    assert.equal(agent.dials, 2);
  } finally {
    agent.destroy();
    await pair.close();
  }
});

test("an http server that emitted 'listening' times out a channel's unfinished headers and closes idle channels", async () => {
  const pair = await sessionPair({ transport: 'tcp' });
  const httpServer = http.createServer(
    { headersTimeout: 300, requestTimeout: 600, connectionsCheckingInterval: 50 },
    (_req, res) => res.end('ok'),
  );
  httpServer.emit('listening');
  pair.server.on('channel', (channel) => httpServer.emit('connection', channel));
  const agent = agentOver(pair.client);
  try {
    // Headers begun and never finished (slowloris): the server gives up on the channel.
    const slow = pair.client.dial();
    slow.on('error', () => {});
    slow.resume();
    slow.write('GET / HTTP/1.1\r\nHost: muxwire.invalid\r\n');
    await until(() => slow.destroyed, 5000, 'the channel with unfinished headers closed by headersTimeout');
    // An idle keep-alive channel: closeIdleConnections() ends it, as it would a socket.
    assert.equal((await get(agent, '/')).body, 'ok');
    await until(() => pair.server.channelCount === 1, 5000, 'one idle channel');
    httpServer.closeIdleConnections();
    await until(() => pair.server.channelCount === 0, 5000, 'the idle channel closed');
  } finally {
    agent.destroy();
    httpServer.close(() => {});
    await pair.close();
  }
});

test('a request queued on the agent while the server goes away fails with GoAwayError, not the process', async () => {
  const pair = await sessionPair({ transport: 'tcp' });
  const httpServer = http.createServer((_req, res) => {
    // A server draining before a deploy: no new channels, and the request in flight answered with a close.
    pair.server.goAway();
    res.setHeader('connection', 'close');
    setTimeout(() => res.end('last'), 50);
  });
  pair.server.on('channel', (channel) => httpServer.emit('connection', channel));
  const agent = agentOver(pair.client, { maxSockets: 1 });
  try {
    const first = get(agent, '/first');
    const queued = get(agent, '/queued');
    assert.equal((await first).body, 'last');
    await assert.rejects(within(queued, 5000, 'the queued request'), GoAwayError);
  } finally {
    agent.destroy();
    await pair.close();
  }
});

test('undici Client with a connect option sends many requests on one channel', async () => {
  const pair = await sessionPair({ transport: 'tcp' });
  const { http: httpServer, channelOf } = httpOverChannels(pair.server);
  let dials = 0;
  const client = new Client('http://muxwire.invalid', {
    connect(_options, callback) {
      dials++;
      const channel = pair.client.dial();
      // undici expects its connector to call back later, as a real connect does, not synchronously.
      queueMicrotask(() => callback(null, channel as never));
    },
  });
  try {
    for (let i = 0; i < 20; i++) {
      const { statusCode, body } = await client.request({ path: `/u${i}`, method: 'POST', body: `payload ${i}` });
      assert.equal(statusCode, 200);
      assert.equal(await body.text(), `POST /u${i} payload ${i}`);
    }
    assert.equal(dials, 1);
    assert.equal(new Set(channelOf).size, 1, 'every request was served on the same channel');
  } finally {
    await client.close();
    httpServer.close();
    await pair.close();
  }
});

test('a gRPC-style long-lived http2 stream over a channel carries messages both ways until both end', async () => {
  const pair = await sessionPair({ transport: 'tcp' });
  const h2 = http2.createServer();
  h2.on('stream', (stream) => {
    stream.respond({ ':status': 200 });
    stream.setEncoding('utf8');
    // Each message is answered as it arrives, while the request is still open (bidirectional streaming).
    stream.on('data', (message: string) => stream.write(`ack ${message}`));
    stream.on('end', () => stream.end('bye'));
  });
  pair.server.on('channel', (channel) => h2.emit('connection', channel));
  const client = http2.connect('http://muxwire.invalid', { createConnection: () => pair.client.dial() });
  try {
    const call = client.request({ ':method': 'POST', ':path': '/chat.Chat/Talk' });
    call.setEncoding('utf8');
    const answers: string[] = [];
    call.on('data', (chunk: string) => answers.push(chunk));
    for (let i = 0; i < 30; i++) {
      call.write(`m${i};`);
      // Wait for each answer before the next message: the stream stays open across many round trips.
      await until(() => answers.join('').includes(`ack m${i};`), 10_000, `the answer to message ${i}`);
      if (i % 10 === 0) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    call.end();
    await once(call, 'end');
    const all = answers.join('');
    assert.equal(all, Array.from({ length: 30 }, (_, i) => `ack m${i};`).join('') + 'bye');
    assert.equal(pair.client.channelCount, 1, 'the whole conversation used one channel');
    // http2 closes its connection (the channel) both ways; only then may the session go.
    client.close();
    await once(client, 'close');
    await until(() => pair.server.channelCount === 0 && pair.client.channelCount === 0, 10_000, 'the channel to close');
  } finally {
    client.destroy();
    h2.close();
    await pair.close();
  }
});

test('a channel reports the TCP addresses of its session and counts its payload bytes', async () => {
  const pair = await sessionPair({ transport: 'tcp' });
  try {
    const accepted = pair.server.accept();
    const channel = pair.client.dial();
    channel.write('hello there'); // 11 bytes
    const inbound = await accepted;
    const clientSocket = pair.client.socket as import('node:net').Socket;
    assert.equal(channel.remoteAddress, '127.0.0.1');
    assert.equal(channel.remotePort, clientSocket.remotePort);
    assert.equal(channel.localAddress, '127.0.0.1');
    assert.equal(channel.localPort, clientSocket.localPort);
    assert.equal(channel.remoteFamily, 'IPv4');
    assert.equal(inbound.remotePort, clientSocket.localPort);
    assert.equal(inbound.localPort, clientSocket.remotePort);
    inbound.end('and back'); // 8 bytes
    channel.end();
    const [atServer, atClient] = await Promise.all([readAll(inbound), readAll(channel)]);
    assert.equal(atServer.toString(), 'hello there');
    assert.equal(atClient.toString(), 'and back');
    assert.equal(channel.bytesWritten, 11);
    assert.equal(channel.bytesRead, 8);
    assert.equal(inbound.bytesRead, 11);
    assert.equal(inbound.bytesWritten, 8);
  } finally {
    await pair.close();
  }
});

test('over a transport that is not a socket, a channel has no addresses', async () => {
  const [a, b] = memoryPipe();
  const client = multiplexedClient(a, { keepAliveInterval: 0 });
  const server = multiplexedServer(b, { keepAliveInterval: 0 });
  try {
    const channel = client.dial();
    assert.equal(channel.remoteAddress, undefined);
    assert.equal(channel.remotePort, undefined);
    assert.equal(channel.localAddress, undefined);
    assert.equal(channel.connecting, false);
    assert.deepEqual(channel.address(), {});
  } finally {
    client.destroy();
    server.destroy();
  }
});

test("pending, readyState and address() answer as a connected socket's, direction by direction", async () => {
  const pair = await sessionPair({ transport: 'tcp' });
  try {
    const accepted = pair.server.accept();
    const channel = pair.client.dial();
    channel.write('x');
    const inbound = await within(accepted, 5000, 'accept');
    assert.equal(channel.pending, false);
    assert.equal(channel.readyState, 'open');
    const local = channel.address() as { address: string; port: number; family: string };
    assert.equal(local.address, '127.0.0.1');
    assert.equal(local.family, 'IPv4');
    assert.equal(local.port, channel.localPort);
    assert.equal((inbound.address() as { port: number }).port, inbound.localPort);
    channel.end();
    await within(once(channel, 'finish'), 5000, "the client's finish");
    assert.equal(channel.readyState, 'readOnly');
    inbound.resume();
    await within(once(inbound, 'end'), 5000, "the server's end");
    assert.equal(inbound.readyState, 'writeOnly');
    inbound.end();
    await within(once(inbound, 'close'), 5000, "the server's close");
    assert.equal(inbound.readyState, 'closed');
  } finally {
    await pair.close();
  }
});

test("destroySoon(): everything written arrives, and the channel closes once the peer's FIN came, with no reset", async () => {
  const pair = await sessionPair({ transport: 'tcp' });
  try {
    const accepted = pair.server.accept();
    const channel = pair.client.dial();
    channel.write('hello');
    const inbound = await within(accepted, 5000, 'accept');
    inbound.resume();
    // More than the peer's window, so most of it is still queued when destroySoon() is called.
    const body = Buffer.alloc(4 * 1024 * 1024, 7);
    const errors: Error[] = [];
    inbound.on('error', (error) => errors.push(error));
    channel.on('error', (error) => errors.push(error));
    const closed = once(inbound, 'close');
    inbound.write(body);
    inbound.destroySoon();
    assert.equal(inbound.readyState, 'readOnly');
    // The peer still writes after the close began: taken, not answered with a reset.
    channel.write('still coming');
    const received = await within(readAll(channel), 10_000, "the client's read");
    assert.equal(received.length, body.length, 'every byte written before destroySoon() arrived');
    assert.ok(received.equals(body));
    channel.end();
    await within(closed, 5000, "the server's channel closed");
    assert.equal(inbound.readyState, 'closed');
    assert.equal(inbound.pending, true, 'a closed socket is pending again');
    assert.deepEqual(inbound.address(), {});
    assert.deepEqual(errors, []);
    assert.equal(inbound.failure, undefined);
    assert.equal(channel.failure, undefined);
  } finally {
    await pair.close();
  }
});

test('an early reply to an upload (413 before the body was read, Connection: close) reaches the client whole', async () => {
  const pair = await sessionPair({ transport: 'tcp' });
  const server = http.createServer((_req, res) => {
    res.statusCode = 413;
    res.setHeader('connection', 'close');
    res.end('too large'); // the request's body is never read
  });
  pair.server.on('channel', (channel: Channel) => server.emit('connection', channel));
  try {
    for (let i = 0; i < 5; i++) {
      const reply = await within(
        new Promise<string>((resolve, reject) => {
          const req = http.request(
            { host: 'muxwire.invalid', method: 'POST', path: '/upload', createConnection: () => pair.client.dial() },
            (res) => {
              let text = `${res.statusCode} `;
              res.setEncoding('utf8');
              res.on('data', (chunk: string) => (text += chunk));
              res.on('end', () => resolve(text));
              res.on('error', reject);
            },
          );
          req.on('error', reject);
          req.end(Buffer.alloc(1024 * 1024, 1));
        }),
        10_000,
        'the reply',
      );
      assert.equal(reply, '413 too large');
    }
  } finally {
    server.close();
    await pair.close();
  }
});

test("a Node http server's last response (Connection: close) arrives whole over a channel", async () => {
  const pair = await sessionPair({ transport: 'tcp' });
  const body = Buffer.alloc(3 * 1024 * 1024, 5);
  let destroySoonCalls = 0;
  const server = http.createServer((_req, res) => {
    res.setHeader('connection', 'close');
    res.end(body);
  });
  pair.server.on('channel', (channel: Channel) => {
    const destroySoon = channel.destroySoon.bind(channel);
    channel.destroySoon = () => {
      destroySoonCalls++;
      destroySoon();
    };
    server.emit('connection', channel);
  });
  try {
    const reply = await within(
      new Promise<Buffer>((resolve, reject) => {
        http
          .get({ host: 'muxwire.invalid', path: '/', createConnection: () => pair.client.dial() }, (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (chunk: Buffer) => chunks.push(chunk));
            res.on('end', () => resolve(Buffer.concat(chunks)));
            res.on('error', reject);
          })
          .on('error', reject);
      }),
      10_000,
      'the response',
    );
    assert.equal(reply.length, body.length);
    assert.ok(reply.equals(body));
    assert.equal(destroySoonCalls, 1, 'the server closed the channel with destroySoon(), as it closes sockets');
  } finally {
    server.close();
    await pair.close();
  }
});

test('https inside channels (TLS over each), every response with Connection: close: each arrives, no channel is reset, the server hears no clientError', async () => {
  // Node's TLS wrapper of a stream destroys it once its own close went out, before the peer's FIN: that
  // destroy() reset the channel, cutting off the peer's last reads (half the responses between processes)
  // or failing the server's channel after a clean exchange ('clientError' for every request).
  const { key, cert } = selfSignedCertificate();
  const pair = await sessionPair({ transport: 'tcp' });
  const clientErrors: string[] = [];
  const server = https.createServer({ key, cert }, (req, res) => {
    res.setHeader('connection', 'close');
    req.resume();
    req.on('end', () => res.end(`ok ${req.url}`));
  });
  server.on('clientError', (error: NodeJS.ErrnoException) => clientErrors.push(String(error.code)));
  pair.server.on('channel', (channel: Channel) => server.emit('connection', channel));
  const agent = new https.Agent({ ca: cert, maxSockets: 4 });
  (agent as unknown as { createConnection: (options: tls.ConnectionOptions) => tls.TLSSocket }).createConnection = (
    options,
  ) => {
    const channel = pair.client.dial();
    channel.allowHalfOpen = false;
    return tls.connect({ ...options, socket: channel, ca: cert, servername: 'localhost' });
  };
  try {
    const bodies: string[] = [];
    for (let i = 0; i < 20; i++) {
      bodies.push(
        await within(
          new Promise<string>((resolve, reject) => {
            https
              .get({ host: 'localhost', path: `/${i}`, agent }, (res) => {
                let text = '';
                res.setEncoding('utf8');
                res.on('data', (chunk: string) => (text += chunk));
                res.on('end', () => resolve(text));
                res.on('error', reject);
              })
              .on('error', reject);
          }),
          10_000,
          `response ${i}`,
        ),
      );
    }
    assert.deepEqual(
      bodies,
      Array.from({ length: 20 }, (_, i) => `ok /${i}`),
    );
    await until(
      () => pair.client.stats().channelsOpen === 0 && pair.server.stats().channelsOpen === 0,
      5000,
      'channels gone',
    );
    assert.deepEqual(clientErrors, []);
    assert.equal(pair.client.stats().resetsOut, 0, 'resets sent by the client');
    assert.equal(pair.server.stats().resetsOut, 0, 'resets sent by the server');
  } finally {
    agent.destroy();
    server.close();
    await pair.close();
  }
});

test("destroy() after end() with nothing left unread closes as a socket's close: no reset; the peer's last small writes are dropped, more data draws a reset", async () => {
  const pair = await sessionPair({ transport: 'tcp' });
  /** A channel dialled, accepted, ended by the dialler and then destroyed once its FIN went. */
  const closedAfterEnd = async (): Promise<[Channel, Channel, Promise<Error | undefined>]> => {
    const accepted = pair.server.accept();
    const channel = pair.client.dial();
    channel.end('request');
    const inbound = await within(accepted, 5000, 'accept');
    const outcome = new Promise<Error | undefined>((resolve) => inbound.on('close', () => resolve(inbound.failure)));
    inbound.on('error', () => {});
    assert.equal(await within(readAll(inbound), 5000, 'the request to its end').then(String), 'request');
    if (!channel.writableFinished) await within(once(channel, 'finish'), 5000, "the dialler's FIN");
    channel.destroy();
    return [channel, inbound, outcome];
  };
  try {
    // The peer replies in a few small writes after the close (a TLS close_notify), then ends: no reset.
    const [, inbound, outcome] = await closedAfterEnd();
    for (const word of ['late ', 'small ', 'words']) {
      inbound.write(word);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    inbound.end();
    assert.equal(await within(outcome, 5000, "the peer's channel to close"), undefined);
    await until(
      () => pair.client.stats().channelsOpen === 0,
      5000,
      "the closed channel to leave the dialler's session",
    );
    assert.equal(pair.client.stats().resetsOut, 0);

    // The peer still sends a body: it hears a reset, as TCP answers data for a closed socket.
    const [, sender, failure] = await closedAfterEnd();
    sender.write(Buffer.alloc(64 * 1024, 1));
    const error = await within(failure, 5000, "the sender's channel to fail");
    assert.equal((error as { code?: string } | undefined)?.code, 'ERR_MUX_CHANNEL_RESET', String(error));
    assert.equal(pair.client.stats().resetsOut, 1);
  } finally {
    await pair.close();
  }
});

test("a channel closed by destroy() after end() whose peer never ends its side: reset after the 2 s linger, or at once by the session's close(); never held for ever", async () => {
  const pair = await sessionPair({ transport: 'tcp' });
  const peerErrors: string[] = [];
  pair.server.on('channel', (inbound: Channel) => {
    inbound.on('error', (error: NodeJS.ErrnoException) => peerErrors.push(String(error.code)));
    inbound.resume(); // reads, never ends
  });
  try {
    const closeAfterEnd = async (): Promise<void> => {
      const channel = pair.client.dial();
      channel.end('hello');
      await within(once(channel, 'finish'), 5000, 'finish');
      channel.destroy();
    };
    await closeAfterEnd();
    assert.equal(pair.client.stats().channelsOpen, 1, 'it waits for the peer');
    await until(() => pair.client.stats().channelsOpen === 0, 5000, 'the linger to end');
    await until(() => peerErrors.length === 1, 5000, "the peer's reset");
    assert.deepEqual(peerErrors, ['ERR_MUX_CHANNEL_RESET']);
    for (let i = 0; i < 5; i++) await closeAfterEnd();
    assert.equal(pair.client.stats().channelsOpen, 5);
    const started = performance.now();
    await within(pair.client.close(), 5000, 'close()');
    assert.ok(performance.now() - started < 1000, `close() took ${(performance.now() - started).toFixed(0)} ms`);
    assert.equal(pair.client.closeError, undefined);
  } finally {
    await pair.close();
  }
});

test('destroy() right after end() of a write larger than the window: everything still arrives, past the 2 s linger (a slow reader) and through close()', async () => {
  const body = Buffer.alloc(2 * 1024 * 1024, 7);
  for (const then of ['a reader that waits 2.5 s', 'close() at once'] as const) {
    const pair = await sessionPair({ transport: 'tcp' });
    try {
      const accepted = pair.server.accept();
      const channel = pair.client.dial();
      channel.on('error', () => {});
      channel.write(body);
      channel.end();
      channel.destroy(); // what was handed to the session still goes, its FIN after it
      const inbound = await within(accepted, 5000, 'accept');
      inbound.pause();
      const closing = then === 'close() at once' ? pair.client.close() : undefined;
      if (closing === undefined) await new Promise((resolve) => setTimeout(resolve, 2500));
      const reading = readAll(inbound);
      inbound.resume();
      const received = await within(reading, 10_000, `${then}: the body`);
      assert.equal(received.length, body.length, then);
      assert.equal(inbound.failure, undefined, `${then}: ${String(inbound.failure)}`);
      inbound.end();
      if (closing !== undefined) await within(closing, 10_000, 'close()');
      assert.equal(pair.client.stats().resetsOut, 0, then);
    } finally {
      await pair.close();
    }
  }
});

test("destroy() is still an abort (a reset) when it would lose something: data left unread, writing not ended, a write still in the stream's buffer", async () => {
  const pair = await sessionPair({ transport: 'tcp' });
  const cases: Record<string, (channel: Channel, inbound: Channel) => Promise<void>> = {
    'data left unread': async (channel, inbound) => {
      channel.pause();
      inbound.write('unread');
      await until(() => channel.readableLength > 0, 5000, 'the data to arrive');
      channel.end();
      await within(once(channel, 'finish'), 5000, 'finish');
      channel.destroy();
    },
    'writing not ended': async (channel) => {
      channel.write('half');
      await new Promise((resolve) => setTimeout(resolve, 20));
      channel.destroy();
    },
    "end() with a write still in the stream's buffer": async (channel) => {
      channel.write(Buffer.alloc(1024 * 1024)); // beyond the window: its callback waits, the next write waits in Node
      channel.write('tail');
      channel.end();
      channel.destroy();
    },
    'resetAndDestroy() after end()': async (channel) => {
      channel.end();
      await within(once(channel, 'finish'), 5000, 'finish');
      channel.resetAndDestroy();
    },
  };
  try {
    for (const [name, close] of Object.entries(cases)) {
      const accepted = pair.server.accept();
      const channel = pair.client.dial();
      channel.on('error', () => {});
      channel.write('');
      channel.write('open ');
      const inbound = await within(accepted, 5000, 'accept');
      inbound.on('error', () => {});
      inbound.resume();
      const failed = new Promise<Error | undefined>((resolve) => inbound.on('close', () => resolve(inbound.failure)));
      await close(channel, inbound);
      const error = await within(failed, 5000, `${name}: the peer's channel to close`);
      assert.equal(
        (error as { code?: string } | undefined)?.code,
        'ERR_MUX_CHANNEL_RESET',
        `${name}: ${String(error)}`,
      );
    }
  } finally {
    await pair.close();
  }
});

test("resetAndDestroy() resets the channel: the peer's channel fails with ERR_MUX_CHANNEL_RESET", async () => {
  const pair = await sessionPair({ transport: 'tcp' });
  try {
    const accepted = pair.server.accept();
    const channel = pair.client.dial();
    channel.write('x');
    const inbound = await within(accepted, 5000, 'accept');
    const failed = once(inbound, 'error');
    inbound.resume();
    assert.equal(channel.resetAndDestroy(), channel);
    assert.equal(channel.destroyed, true);
    const [error] = (await within(failed, 5000, "the peer's error")) as [{ code: string }];
    assert.equal(error.code, 'ERR_MUX_CHANNEL_RESET');
  } finally {
    await pair.close();
  }
});

test("setTimeout emits 'timeout' after an idle period, not while bytes flow, and 0 turns it off", async () => {
  const pair = await sessionPair();
  try {
    const accepted = pair.server.accept();
    const channel = pair.client.dial();
    channel.write('x');
    const inbound = await accepted;
    inbound.resume();
    let timeouts = 0;
    assert.equal(channel.timeout, undefined, 'no timeout set yet');
    assert.equal(
      channel.setTimeout(150, () => timeouts++),
      channel,
    );
    assert.equal(channel.timeout, 150);
    // Bytes every 30 ms for ~450 ms: never idle for 150 ms, so no 'timeout'.
    for (let i = 0; i < 15; i++) {
      channel.write('y');
      await new Promise((resolve) => setTimeout(resolve, 30));
    }
    assert.equal(timeouts, 0, 'no timeout while writing');
    await until(() => timeouts === 1, 5_000, "'timeout' once idle");
    assert.equal(channel.destroyed, false, "'timeout' does not close the channel");
    let later = 0;
    channel.on('timeout', () => later++);
    channel.setTimeout(0);
    assert.equal(channel.timeout, 0, 'a socket says 0 once its timeout is off');
    await new Promise((resolve) => setTimeout(resolve, 400));
    assert.equal(later, 0, 'no timeout after setTimeout(0)');
    assert.throws(() => channel.setTimeout(-1), RangeError);
  } finally {
    await pair.close();
  }
});

test("no 'timeout' while one large write is still leaving as the peer reads it, as on a socket", async () => {
  const pair = await sessionPair();
  try {
    const accepted = pair.server.accept();
    const channel = pair.client.dial();
    const size = 4 * 1024 * 1024;
    let written = false;
    // One write: nothing stamps the channel as active after it but the bytes that leave as the window opens.
    channel.write(Buffer.alloc(size, 7), () => (written = true));
    const inbound = await accepted;
    let timeouts = 0;
    channel.setTimeout(150, () => timeouts++);
    // The peer reads a chunk every 20 ms: the write drains for well over 150 ms.
    let got = 0;
    const start = performance.now();
    inbound.on('data', (chunk: Buffer) => {
      got += chunk.length;
      inbound.pause();
      setTimeout(() => inbound.resume(), 20);
    });
    await until(() => got === size, 20_000, 'the peer read the whole write');
    const drained = performance.now() - start;
    assert.ok(drained > 600, `the write drained in ${drained.toFixed(0)} ms: too fast to test the timeout`);
    assert.equal(timeouts, 0, `'timeout' while the write was leaving (after ${drained.toFixed(0)} ms)`);
    await until(() => written, 5000, 'the write done');
    await until(() => timeouts === 1, 5000, "'timeout' once nothing moves");
  } finally {
    await pair.close();
  }
});

test("'timeout' comes once per idle period, as on a socket: again only after bytes moved", async () => {
  const pair = await sessionPair();
  try {
    const channel = pair.client.dial();
    channel.write('x');
    let timeouts = 0;
    channel.on('timeout', () => timeouts++);
    channel.setTimeout(100);
    await until(() => timeouts === 1, 5000, "the first 'timeout'");
    await new Promise((resolve) => setTimeout(resolve, 450));
    assert.equal(timeouts, 1, 'no more while the channel stays idle');
    channel.write('y');
    await until(() => timeouts === 2, 5000, "one more 'timeout' after the byte");
    await new Promise((resolve) => setTimeout(resolve, 350));
    assert.equal(timeouts, 2);
  } finally {
    await pair.close();
  }
});

test("setTimeout(ms) right after a write that leaves at once: 'timeout' after ms, as on a socket (not 2 ms)", async () => {
  const pair = await sessionPair();
  try {
    const accepted = pair.server.accept();
    const channel = pair.client.dial();
    channel.write('x');
    (await accepted).resume();
    await new Promise((resolve) => setTimeout(resolve, 50));
    channel.write('y');
    const started = performance.now();
    let after = 0;
    channel.setTimeout(300, () => (after = performance.now() - started));
    await until(() => after > 0, 5000, "the 'timeout'"); // (its timer is unref'd, as a socket's)
    assert.ok(after >= 295 && after < 500, `'timeout' after ${after.toFixed(0)} ms`);
  } finally {
    await pair.close();
  }
});

test("after 'timeout', a channel that stays idle arms no timer until bytes move again, as a socket", async () => {
  const pair = await sessionPair();
  const realSetTimeout = globalThis.setTimeout;
  let armed = 0;
  try {
    const accepted = pair.server.accept();
    const channel = pair.client.dial();
    channel.write('x');
    const inbound = await accepted;
    inbound.resume();
    let timeouts = 0;
    channel.on('timeout', () => timeouts++);
    channel.setTimeout(20);
    await until(() => timeouts === 1, 5000, "the first 'timeout'");
    // Count the timers armed from here on while the channel stays idle for twenty periods.
    globalThis.setTimeout = ((...args: Parameters<typeof setTimeout>) => {
      armed++;
      return realSetTimeout(...args);
    }) as typeof setTimeout;
    await new Promise((resolve) => realSetTimeout(resolve, 400));
    globalThis.setTimeout = realSetTimeout;
    assert.equal(timeouts, 1);
    // Before: the idle timer looked again every 20 ms (about 20 timers, CPU for every idle channel).
    assert.ok(armed <= 2, `${armed} timers armed while the channel stayed idle`);
    channel.write('y'); // bytes move: the timer is armed again, and 'timeout' comes after another idle period
    await until(() => timeouts === 2, 5000, "'timeout' after the next idle period");
  } finally {
    globalThis.setTimeout = realSetTimeout;
    await pair.close();
  }
});

test("a 'timeout' listener that turns the timeout off or destroys the channel hears no further 'timeout'", async () => {
  const pair = await sessionPair();
  try {
    const first = pair.client.dial();
    let offTimeouts = 0;
    first.setTimeout(50, () => {
      offTimeouts++;
      first.setTimeout(0); // from inside the listener, as http code does
    });
    const second = pair.client.dial();
    second.on('error', () => {});
    let destroyTimeouts = 0;
    second.on('timeout', () => {
      destroyTimeouts++;
      second.destroy(); // Node's http server does this on its keep-alive timeout
    });
    second.setTimeout(50);
    await until(() => offTimeouts === 1 && destroyTimeouts === 1, 5_000, "the first 'timeout' of each");
    await new Promise((resolve) => setTimeout(resolve, 400)); // eight more idle periods
    assert.equal(offTimeouts, 1);
    assert.equal(destroyTimeouts, 1);
    assert.equal(second.timeout, 50, 'a destroyed channel still says what was set, as a socket does');
  } finally {
    await pair.close();
  }
});

test('setKeepAlive, setNoDelay, ref and unref return the channel, as on a socket', async () => {
  const pair = await sessionPair();
  try {
    const channel = pair.client.dial();
    assert.equal(channel.setKeepAlive(true, 1000), channel);
    assert.equal(channel.setNoDelay(true), channel);
    assert.equal(channel.ref(), channel);
    assert.equal(channel.unref(), channel);
  } finally {
    await pair.close();
  }
});

test("an empty chunk last in a batch of writes does not call the batch's callback before its bytes left (the caller may reuse its buffer then)", async () => {
  const pair = await sessionPair();
  let accepted: Channel | undefined;
  pair.server.on('channel', (channel: Channel) => (accepted = channel)); // not read yet: the window fills
  const channel = pair.client.dial();
  await new Promise<void>((resolve) => channel.write(Buffer.alloc(256 * 1024, 0x41), () => resolve()));
  const buffer = Buffer.alloc(64 * 1024, 0x42);
  let called = false;
  channel.cork();
  channel.write(buffer);
  channel.write(Buffer.alloc(0), () => (called = true));
  channel.uncork();
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(called, false, 'the 64 KiB still wait for window');
  assert.ok(channel.writableLength > 0, 'Node still counts them as buffered');
  const received: Buffer[] = [];
  accepted!.on('data', (chunk: Buffer) => received.push(chunk));
  await until(() => called, 3000, 'the callback once the bytes left');
  buffer.fill(0x58); // reused only now
  await until(() => Buffer.concat(received).length === 320 * 1024, 3000, 'every byte at the peer');
  assert.ok(
    Buffer.concat(received)
      .subarray(256 * 1024)
      .every((byte) => byte === 0x42),
  );
  await pair.close();
});

test("a write on a channel kept readable after its session failed (the peer had ended) is taken and goes nowhere; the channel fails once read, without an 'error' listener, and the process goes on", async () => {
  const pair = await sessionPair();
  pair.server.on('channel', (channel: Channel) => {
    channel.on('error', () => {});
    channel.end('reply', () => setTimeout(() => pair.server.destroy(), 20));
  });
  const channel = pair.client.dial();
  channel.write('question');
  await until(() => pair.client.state === 'closed', 3000, 'the session to fail');
  let writeError: Error | null | undefined;
  channel.write('more', (error) => (writeError = error));
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(channel.destroyed, false, "kept until the peer's reply is read");
  let reply = '';
  channel.on('data', (chunk: Buffer) => (reply += chunk.toString()));
  await until(() => channel.destroyed, 2000, 'the channel to be destroyed');
  assert.equal(reply, 'reply');
  assert.equal(writeError ?? null, null, 'the write was taken (as a socket takes bytes before a reset)');
  assert.equal((channel.failure as { code?: string } | undefined)?.code, 'ERR_MUX_TRANSPORT_CLOSED');
  await pair.close();
});

test("unshift() and setEncoding() on a channel never drive the session's count of unread bytes below zero", async () => {
  const pair = await sessionPair();
  const accepted = once(pair.server, 'channel') as Promise<[Channel]>;
  const channel = pair.client.dial();
  channel.write(Buffer.alloc(1000, 1));
  const [peer] = await accepted;
  await until(() => peer.readableLength === 1000, 2000, 'the first 1000 bytes');
  const chunk = peer.read() as Buffer;
  peer.unshift(chunk.subarray(500));
  channel.write(Buffer.alloc(1000, 2));
  await until(() => peer.readableLength === 1500, 2000, 'the next 1000 bytes');
  while (peer.read() !== null);
  assert.equal(pair.server.bufferedBytes, 0);
  peer.setEncoding('hex');
  channel.write(Buffer.alloc(1000, 3));
  await until(() => peer.readableLength > 0, 2000, 'hex text');
  while (peer.read() !== null);
  assert.equal(pair.server.bufferedBytes, 0);
  channel.write(Buffer.alloc(10, 4));
  await until(() => pair.server.bufferedBytes === 10, 2000, 'unread bytes counted again from zero');
  await pair.close();
});

test('setTimeout beyond 2^31-1 ms waits as long as a timer can, as a socket does (Node http server asks for keepAliveTimeout + 1 s)', async () => {
  const pair = await sessionPair();
  const channel = pair.client.dial();
  channel.setTimeout(0x7fff_ffff + 1000);
  assert.equal(channel.timeout, 0x7fff_ffff);
  assert.throws(() => channel.setTimeout(Number.NaN), RangeError);
  channel.setTimeout(0);
  await pair.close();
});

test('with setEncoding(), unread bytes are counted in bytes, not characters: a stopped reader holds the peer at its window', async () => {
  const window = 256 * 1024;
  for (const [encoding, text] of [
    ['utf8', '日本語'],
    ['utf8', '🎉'],
    ['utf16le', 'ab'],
    ['hex', 'ab'],
  ] as const) {
    const pair = await sessionPair({ transport: 'tcp' });
    try {
      const accepted = once(pair.server, 'channel') as Promise<[Channel]>;
      const channel = pair.client.dial();
      const block = Buffer.from(text.repeat(Math.ceil(16384 / Buffer.byteLength(text))));
      channel.write(block);
      const [peer] = await accepted;
      peer.pause();
      peer.setEncoding(encoding);
      let stop = false;
      const pump = (): void => {
        while (!stop) if (!channel.write(block)) return void channel.once('drain', pump);
      };
      pump();
      await until(() => peer.bytesRead >= window, 3000, `${encoding}: the window's worth`);
      await new Promise((resolve) => setTimeout(resolve, 300)); // time for any credit given too soon to be used
      stop = true;
      assert.equal(peer.bytesRead, window, `${encoding} ${text}: the peer sent exactly the window, no more`);
      assert.equal(pair.server.bufferedBytes, window, `${encoding}: the session counts the unread bytes`);
      assert.equal(peer.stats().bufferedBytes, window);
    } finally {
      await pair.close();
    }
  }
});

test('with setEncoding(), text read in every way arrives whole and the window keeps moving (no stall, nothing left counted)', async () => {
  const text = 'żółw 日本語 🎉 '.repeat(60_000); // about 1.4 MB, characters cut at every frame boundary
  for (const how of ['data', 'read', 'iterate', 'paused-data'] as const) {
    const pair = await sessionPair({ transport: 'tcp', client: { maxFrameSize: 1025 } });
    try {
      const accepted = once(pair.server, 'channel') as Promise<[Channel]>;
      const channel = pair.client.dial();
      channel.end(text);
      const [peer] = await accepted;
      peer.setEncoding('utf8');
      let got = '';
      const done = within(
        (async () => {
          if (how === 'iterate') {
            for await (const chunk of peer) got += chunk as string;
            return;
          }
          if (how === 'paused-data') {
            peer.pause();
            await new Promise((resolve) => setTimeout(resolve, 50)); // a window's worth waits, decoded
          }
          await new Promise<void>((resolve, reject) => {
            peer.on('error', reject);
            peer.on('end', resolve);
            if (how === 'read') {
              peer.on('readable', () => {
                let chunk: string | null;
                while ((chunk = peer.read(1000) as string | null) !== null) got += chunk;
              });
            } else {
              peer.on('data', (chunk: string) => (got += chunk));
              peer.resume();
            }
          });
        })(),
        10_000,
        `${how}: the whole text`,
      );
      await done;
      assert.equal(got.length, text.length, how);
      assert.ok(got === text, `${how}: the same text`);
      assert.equal(pair.server.bufferedBytes, 0, `${how}: nothing left counted as unread`);
    } finally {
      await pair.close();
    }
  }
});

test('with setEncoding(), bytes that are not UTF-8 (one character each, three when re-encoded) are counted as they came: a slow reader holds the peer at its window', async () => {
  const window = 256 * 1024;
  const pair = await sessionPair({ transport: 'tcp' });
  try {
    const accepted = once(pair.server, 'channel') as Promise<[Channel]>;
    const channel = pair.client.dial();
    const block = Buffer.alloc(16384, 0xff);
    channel.write(block);
    const [peer] = await accepted;
    peer.pause();
    peer.setEncoding('utf8');
    let stop = false;
    const pump = (): void => {
      while (!stop) if (!channel.write(block)) return void channel.once('drain', pump);
    };
    pump();
    let readByApp = 0;
    let mostHeld = 0;
    for (let i = 0; i < 60; i++) {
      await new Promise((resolve) => setTimeout(resolve, 15));
      const text = peer.read(4096) as string | null; // one character per byte here
      if (text !== null) readByApp += text.length;
      mostHeld = Math.max(mostHeld, peer.bytesRead - readByApp);
    }
    stop = true;
    assert.ok(readByApp > 0);
    assert.ok(mostHeld <= window, `held ${mostHeld} bytes unread against a ${window}-byte window`);
  } finally {
    await pair.close();
  }
});

test("with setEncoding(), a 'data' listener that reads or puts back part of its chunk leaves the count of unread bytes exact", async () => {
  for (const kind of ['unshift', 'read'] as const) {
    const pair = await sessionPair();
    try {
      const accepted = once(pair.server, 'channel') as Promise<[Channel]>;
      const channel = pair.client.dial();
      channel.write(Buffer.alloc(1000, 'a'));
      const [peer] = await accepted;
      peer.setEncoding('utf8');
      peer.pause();
      await until(() => peer.bytesRead === 1000, 2000, 'the first chunk');
      channel.write(Buffer.alloc(1000, 'b'));
      await until(() => peer.bytesRead === 2000, 2000, 'the second chunk');
      let consumed = 0;
      peer.once('data', (chunk: string) => {
        peer.pause();
        if (kind === 'unshift') {
          peer.unshift(chunk.slice(500)); // a parser's peek: half of it back
          consumed += 500;
        } else {
          consumed += chunk.length + (peer.read(300) as string).length; // and a little more, from within
        }
      });
      peer.resume();
      await new Promise((resolve) => setTimeout(resolve, 20));
      assert.equal(peer.stats().bufferedBytes, peer.bytesRead - consumed, kind);
    } finally {
      await pair.close();
    }
  }
});

test('with setEncoding(), a chunk read in part counts at most a byte per UTF-8 character read: ASCII then CJK in one frame', async () => {
  const pair = await sessionPair({ client: { maxFrameSize: 1024 * 1024 } });
  try {
    const accepted = once(pair.server, 'channel') as Promise<[Channel]>;
    const channel = pair.client.dial();
    const block = Buffer.concat([Buffer.alloc(65536, 'a'), Buffer.from('日'.repeat(65536))]); // 256 KiB
    channel.write(block);
    const [peer] = await accepted;
    peer.setEncoding('utf8');
    peer.pause();
    await until(() => peer.bytesRead === block.length, 3000, 'the block');
    const text = peer.read(65536) as string;
    assert.equal(Buffer.byteLength(text), 65536);
    assert.ok(
      peer.stats().bufferedBytes >= block.length - 65536,
      `${peer.stats().bufferedBytes} counted, ${block.length - 65536} held`,
    );
  } finally {
    await pair.close();
  }
});

/**
 * Reads records of `sizes` bytes with `read(n)` in `'readable'`, as a parser of length-prefixed records does, the
 * peer writing them all and leaving its side open. Resolves to the lengths read.
 */
async function readRecords(channel: Channel, sizes: readonly number[]): Promise<number[]> {
  const got: number[] = [];
  await new Promise<void>((resolve) => {
    const onReadable = (): void => {
      let record: Buffer | null;
      while (got.length < sizes.length && (record = channel.read(sizes[got.length]) as Buffer | null) !== null) {
        got.push(record.length);
      }
      if (got.length === sizes.length) {
        channel.off('readable', onReadable);
        resolve();
      }
    };
    channel.on('readable', onReadable);
  });
  return got;
}

for (const protocol of ['yamux', 'multiplex'] as const) {
  const options = { client: { protocol }, server: { protocol } };

  test(`${protocol}: read(n) of records below the window: what was read goes back to the peer when the reader waits for more (no stall at less than half a window read)`, async () => {
    const pair = await sessionPair({ transport: 'tcp', ...options });
    try {
      const accepted = once(pair.server, 'channel') as Promise<[Channel]>;
      const channel = pair.client.dial();
      // 100,000 bytes read leave the update short of half the 256 KiB window; the next record needs 37,856 more
      // bytes than the window let arrive.
      const sizes = [100_000, 200_000, 150_000];
      for (const size of sizes) channel.write(Buffer.alloc(size, size % 251));
      const [peer] = await accepted;
      const got = await within(readRecords(peer, sizes), 5000, 'three records read with read(n)');
      assert.deepEqual(got, sizes);
      assert.equal(peer.readableLength, 0);
      assert.ok(!peer.readableEnded, 'the writer left its side open');
    } finally {
      await pair.close();
    }
  });

  test(`${protocol}: read(n) beyond the receive window (a multiplex channel's held-reading mark): the record arrives`, async () => {
    const pair = await sessionPair({ transport: 'tcp', ...options });
    try {
      const accepted = once(pair.server, 'channel') as Promise<[Channel]>;
      const channel = pair.client.dial();
      const sizes = [300_000, 1_000_000];
      for (const size of sizes) channel.write(Buffer.alloc(size, 7));
      const [peer] = await accepted;
      const got = await within(readRecords(peer, sizes), 5000, 'records larger than the window read with read(n)');
      assert.deepEqual(got, sizes);
      if (protocol === 'yamux') assert.ok(peer.receiveWindow >= 1_000_000, `the window grew (${peer.receiveWindow})`);
    } finally {
      await pair.close();
    }
  });
}

test('read(n) of UTF-8 text with setEncoding(): n characters of three bytes each, more bytes than the window', async () => {
  const pair = await sessionPair({ transport: 'tcp' });
  try {
    const accepted = once(pair.server, 'channel') as Promise<[Channel]>;
    const channel = pair.client.dial();
    channel.write('語'.repeat(100_000)); // 300,000 bytes
    const [peer] = await accepted;
    peer.setEncoding('utf8');
    const text = await within(
      new Promise<string>((resolve) => {
        peer.on('readable', () => {
          const record = peer.read(100_000) as string | null;
          if (record !== null) resolve(record);
        });
      }),
      5000,
      '100,000 characters read with read(n)',
    );
    assert.equal(text, '語'.repeat(100_000));
  } finally {
    await pair.close();
  }
});

test('read(n) when judging a growth on trial undoes it: the window still covers what the reader waits for (the undo left the peer without credit)', async () => {
  // A window grown by auto-tuning on a 60 ms link, on trial. The reader then reads in steps, far below any rate
  // a growth must beat: each time all the peer may send has arrived, 32 KiB, and then read(n) of a grown
  // window less a byte, more than is buffered (a parser's record). The trial fails once a grown window was
  // read, and the verdict falls inside such a read(n). Undone there after the window was sized to n, the undo
  // left nothing to grant: the peer had no credit, nothing more arrived, and the reader waited for good.
  const maxWindow = 512 * 1024;
  const changes: string[] = [];
  let mode: 'fast' | 'slow' | 'record' | 'drain' = 'fast';
  let asking = false;
  let rx: InstanceType<typeof ReceiveWindow> | undefined;
  // eslint-disable-next-line @typescript-eslint/unbound-method -- put back as it was, called with its own `this`
  const autoTune = ReceiveWindow.prototype.autoTune;
  ReceiveWindow.prototype.autoTune = function (this: InstanceType<typeof ReceiveWindow>, ...args) {
    const resized = autoTune.apply(this, args);
    if (resized !== 0 && this.maxSize === maxWindow) {
      // eslint-disable-next-line @typescript-eslint/no-this-alias -- the window under test, recorded
      rx = this;
      changes.push(resized > 0 ? `grown to ${this.size}` : `undone to ${this.size}${asking ? ' in read(n)' : ''}`);
      if (resized > 0 && mode === 'fast') mode = 'slow';
      else if (resized < 0) mode = 'record';
    }
    return resized;
  };
  const pair = await sessionPair({
    delayMs: 30,
    server: { maxWindow, memoryBudget: null },
    client: { memoryBudget: null },
  });
  let step: ReturnType<typeof setInterval> | undefined;
  try {
    await new Promise((resolve) => setTimeout(resolve, 300)); // the opening ping's RTT
    const total = 6 * 1024 * 1024;
    const want = maxWindow - 1;
    let got = 0;
    let steps = 0;
    const ended = new Promise<void>((resolve) =>
      pair.server.once('channel', (channel: Channel) => {
        const readSome = (): void => {
          for (;;) {
            if (mode === 'slow') return;
            const chunk = (mode === 'record' ? channel.read(want) : channel.read()) as Buffer | null;
            if (chunk === null) return;
            got += chunk.length;
            if (mode === 'record') mode = 'drain'; // the record came: read on as it comes
          }
        };
        channel.on('readable', readSome);
        step = setInterval(() => {
          // A step once the peer has no credit left: all it may send is here.
          if (mode !== 'slow' || rx === undefined || channel.readableLength < rx.granted - rx.consumed) return;
          if (++steps > 100) return;
          const chunk = channel.read(Math.min(32768, channel.readableLength)) as Buffer | null;
          if (chunk !== null) got += chunk.length;
          if (channel.readableLength < want) {
            asking = true;
            const record = channel.read(want) as Buffer | null; // less is buffered: null, and the window covers it
            asking = false;
            if (record !== null) got += record.length;
          }
        }, 10);
        channel.on('end', () => resolve());
      }),
    );
    const channel = pair.client.dial();
    channel.resume();
    channel.end(Buffer.alloc(total, 1));
    await within(ended, 15_000, 'the records read to the end').catch((error: unknown) => {
      throw new Error(`${String(error)}: ${got} of ${total} bytes read; window ${changes.join(', ')}`);
    });
    assert.equal(got, total);
    assert.deepEqual(changes.slice(0, 2), [`grown to ${maxWindow}`, 'undone to 262144 in read(n)'], changes.join(', '));
  } finally {
    clearInterval(step);
    ReceiveWindow.prototype.autoTune = autoTune;
    await pair.close();
  }
});

/** What the callback of a write hears on a channel whose writing has ended. */
function lateWrite(channel: Channel): Promise<(Error & { code?: string }) | null | undefined> {
  return new Promise((resolve) => channel.write('late', resolve));
}

test("dial({ allowHalfOpen: false }): after the peer's FIN, 'end' listeners (and what they defer to the next tick) may still write, as on a socket; then writing ends and the channel closes cleanly", async () => {
  const pair = await sessionPair({ transport: 'tcp' });
  try {
    const channel = pair.client.dial({ allowHalfOpen: false });
    channel.write('request');
    const [far] = (await once(pair.server, 'channel')) as [Channel];
    const heard = readAll(far);
    far.end('reply');
    let read = '';
    channel.on('data', (chunk: Buffer) => (read += chunk.toString()));
    channel.once('end', () => {
      channel.write(' and the last word');
      process.nextTick(() => channel.write(', and one more')); // (before Node's end, as on a socket)
    });
    await within(once(channel, 'close'), 5_000, "the channel's close");
    assert.equal(read, 'reply');
    assert.equal(channel.failure, undefined, 'closed cleanly');
    assert.equal((await within(heard, 5_000, "the peer's read")).toString(), 'request and the last word, and one more');
  } finally {
    await pair.close();
  }
});

test("dial({ allowHalfOpen: false }): a write after writing ended at the peer's FIN fails the channel with ERR_MUX_WRITE_AFTER_END, an 'error' only for a listener (no crash)", async () => {
  const pair = await sessionPair({ transport: 'tcp' });
  try {
    // A large upload keeps the channel open after its writing ended: its FIN waits behind it.
    const channel = pair.client.dial({ allowHalfOpen: false });
    channel.write(Buffer.alloc(4 * 1024 * 1024));
    const [far] = (await once(pair.server, 'channel')) as [Channel];
    far.pause(); // (reads nothing: the upload waits for window)
    far.end();
    channel.resume();
    await within(once(channel, 'end'), 5_000, "the channel's 'end'");
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(channel.writableEnded, true, "its writing ended at the peer's FIN");
    assert.equal(channel.destroyed, false, 'still open: its upload waits for window');
    assert.equal(channel.listenerCount('error'), 0);
    const closed = new Promise((resolve) => channel.once('close', resolve)); // (events.once would listen for 'error')
    const refused = await lateWrite(channel);
    assert.equal(refused?.code, 'ERR_MUX_WRITE_AFTER_END');
    assert.match(refused.message, /allowHalfOpen is false/);
    assert.equal((channel.failure as { code?: string } | undefined)?.code, 'ERR_MUX_WRITE_AFTER_END');
    await within(closed, 5_000, "the channel's close");
  } finally {
    await pair.close();
  }
});

test("allowHalfOpen = false set on an accepted channel whose FIN came with its SYN (before 'end'): its writing ends after 'end' and a later write fails with ERR_MUX_WRITE_AFTER_END, no crash", async () => {
  const pair = await sessionPair({ transport: 'tcp' });
  try {
    const channel = pair.client.dial();
    channel.end('request'); // SYN, data and FIN in one read: the server's channel is handed over with its FIN pushed
    const [far] = (await once(pair.server, 'channel')) as [Channel];
    far.allowHalfOpen = false;
    far.write(Buffer.alloc(4 * 1024 * 1024)); // (waits for window: the client reads nothing yet)
    const heard = readAll(far);
    await within(once(far, 'end'), 5_000, "the far channel's 'end'");
    assert.equal((await heard).toString(), 'request');
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(far.writableEnded, true, "its writing ended after 'end'");
    assert.equal(far.listenerCount('error'), 1, "(readAll's own listener only)");
    const refused = await lateWrite(far);
    assert.equal(refused?.code, 'ERR_MUX_WRITE_AFTER_END');
  } finally {
    await pair.close();
  }
});

test("dial({ allowHalfOpen: false }): closeRead() ends writing too (as Node's Duplex), and a later write fails with ERR_MUX_WRITE_AFTER_END, no crash", async () => {
  const pair = await sessionPair({ transport: 'tcp' });
  try {
    const channel = pair.client.dial({ allowHalfOpen: false });
    channel.write(Buffer.alloc(4 * 1024 * 1024)); // (the peer reads nothing: the channel stays open)
    await once(pair.server, 'channel');
    channel.closeRead();
    await within(once(channel, 'end'), 5_000, "the channel's 'end'");
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(channel.writableEnded, true);
    assert.equal(channel.listenerCount('error'), 0);
    const refused = await lateWrite(channel);
    assert.equal(refused?.code, 'ERR_MUX_WRITE_AFTER_END');
    assert.match(refused.message, /when its reading ended \(allowHalfOpen is false\)/);
  } finally {
    await pair.close();
  }
});

test("dial({ allowHalfOpen: false }): small writes from an 'end' listener count their cost as any write does: write() says false near the high-water mark", async () => {
  const pair = await sessionPair({ transport: 'tcp' });
  try {
    const channel = pair.client.dial({ allowHalfOpen: false });
    channel.write('request');
    const [far] = (await once(pair.server, 'channel')) as [Channel];
    const heard = readAll(far);
    far.end();
    let accepted = 0;
    channel.once('end', () => {
      // 1,000 one-byte writes: each waiting one counts 224 bytes besides its own, so the 64 KiB mark comes
      // after about 290 of them (counted by bytes alone it would never come).
      for (let i = 0; i < 1000 && channel.write('x'); i++) accepted++;
    });
    channel.resume();
    await within(once(channel, 'close'), 5_000, "the channel's close");
    assert.ok(accepted > 100 && accepted < 400, `write() said false after ${accepted} writes`);
    assert.equal((await heard).length, 'request'.length + accepted + 1);
  } finally {
    await pair.close();
  }
});
