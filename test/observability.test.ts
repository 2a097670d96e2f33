/**
 * Observability: the session's and channels' counters after known traffic (exactly as the yamux codec frames
 * it), resets and refusals counted both ways, window stalls, the `logger` option's records and levels, the
 * `channelOpen` / `channelClose` events, and Node's outlets (`muxwire:log`, `muxwire:session`,
 * `NODE_DEBUG=muxwire`).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import diagnostics from 'node:diagnostics_channel';
import { fileURLToPath } from 'node:url';
import {
  ChannelRefusedError,
  ChannelResetError,
  LOG_CHANNEL,
  formatLogRecord,
  LOG_LEVELS,
  type LogRecord,
  SESSION_CHANNEL,
  type ChannelStats,
  lightClient,
  lightServer,
  multiplexedClient,
  multiplexedServer,
} from '../src/index.js';
import { Flag, FrameType, HEADER_SIZE } from '../src/core/frame.js';
import { WebSession, connectWebSocket, logRecords, streamTransport } from '../src/web/index.js';
import { WebSocket as WsWebSocket, WebSocketServer } from 'ws';
import { RawPeer, frame, memoryPipe, pseudoRandomBytes, readAll, sessionPair, until } from './helpers.js';
import { corePipe } from './support/core-pipe.js';

function recorder(): { records: LogRecord[]; logger: (record: LogRecord) => void; events: () => string[] } {
  const records: LogRecord[] = [];
  return { records, logger: (record) => records.push(record), events: () => records.map((r) => r.event) };
}

test('after N bytes written, bytes and frames each way match exactly what the yamux codec framed', async () => {
  const pair = await sessionPair({ client: { maxFrameSize: 16 * 1024 } });
  try {
    const { client, server } = pair;
    const data = pseudoRandomBytes(100_000, 7);
    const accepted = server.accept();
    const channel = client.dial();
    channel.end(data);
    const inbound = await accepted;
    assert.deepEqual(await readAll(inbound), data);
    inbound.end();
    await readAll(channel);
    await until(() => client.channelCount === 0 && server.channelCount === 0, 5000, 'both channels closed');
    // Everything either side wrote has arrived (the transport is an in-memory pipe): the books must agree.
    await until(
      () => client.stats().bytesOut === server.stats().bytesIn && server.stats().bytesOut === client.stats().bytesIn,
      5000,
      'bytes in flight',
    );
    const c = client.stats();
    const s = server.stats();
    assert.deepEqual(
      Object.keys(c).sort(),
      [
        'bufferedBytes',
        'bytesIn',
        'bytesOut',
        'channelsOpen',
        'dataBytesIn',
        'dataBytesOut',
        'framesIn',
        'framesOut',
        'inboundChannels',
        'inboundOpen',
        'outboundChannels',
        'outboundOpen',
        'refusalsIn',
        'refusalsOut',
        'resetsIn',
        'resetsOut',
        'rtt',
        'state',
        'windowStalls',
      ],
      'the counters and nothing else (no logger)',
    );
    assert.equal(c.dataBytesOut, data.length);
    assert.equal(s.dataBytesIn, data.length);
    // yamux: every frame is a 12-byte header plus, for Data, its payload.
    assert.equal(c.bytesOut, c.framesOut * HEADER_SIZE + c.dataBytesOut);
    assert.equal(s.bytesIn, s.framesIn * HEADER_SIZE + s.dataBytesIn);
    assert.equal(s.framesIn, c.framesOut);
    assert.equal(c.framesIn, s.framesOut);
    assert.ok(
      c.bytesOut >= data.length + Math.ceil(data.length / (16 * 1024)) * HEADER_SIZE,
      'at least one header per 16 KiB fragment',
    );
    assert.equal(c.outboundChannels, 1);
    assert.equal(s.inboundChannels, 1);
    assert.equal(c.channelsOpen, 0);
    assert.deepEqual([c.resetsIn, c.resetsOut, c.refusalsIn, c.refusalsOut], [0, 0, 0, 0]);
    const mine = channel.stats();
    assert.equal(mine.bytesOut, data.length);
    assert.equal(mine.bytesIn, 0);
    assert.equal(mine.state, 'closed');
    assert.equal(inbound.stats().bytesIn, data.length);
    assert.equal(inbound.stats().outbound, false);
  } finally {
    await pair.close();
  }
});

test('resets and refusals are counted on both sides and reported to the logger', async () => {
  const serverLog = recorder();
  const clientLog = recorder();
  const pair = await sessionPair({
    server: { acceptBacklog: 1, logger: serverLog.logger },
    client: { logger: clientLog.logger },
  });
  try {
    const { client, server } = pair;
    // No accept on the server: the first channel waits in its accept queue, the next two are refused.
    const channels = [client.dial(), client.dial(), client.dial()];
    const failures = channels.map(
      (channel) =>
        new Promise<Error | undefined>((resolve) => {
          channel.on('error', resolve);
          channel.on('close', () => resolve(channel.failure));
        }),
    );
    for (const channel of channels) channel.write('x');
    const refused = await Promise.all(failures.slice(1));
    for (const error of refused) assert.ok(error instanceof ChannelRefusedError, `refused: ${error}`);
    assert.equal(client.stats().refusalsIn, 2);
    assert.equal(server.stats().refusalsOut, 2);
    const refusalsLogged = serverLog.records.filter((r) => r.event === 'channel-refused');
    assert.equal(refusalsLogged.length, 2);
    for (const r of refusalsLogged) {
      assert.equal(r.level, 'warn');
      assert.equal(r.direction, 'out');
      assert.equal(r.reason, 'accept-backlog');
      assert.match(
        formatLogRecord(r),
        /^server warn channel-refused channel=\d+: refused the peer's channel: the accept queue is full/,
      );
    }
    assert.equal(clientLog.records.filter((r) => r.event === 'channel-refused' && r.direction === 'in').length, 2);

    // The queued one is accepted, then reset by the client.
    const inbound = await server.accept();
    inbound.on('error', () => {});
    const reset = new Promise((resolve) => inbound.on('close', resolve)); // (events.once would reject on 'error')
    channels[0]!.destroy();
    await reset;
    assert.ok(inbound.failure instanceof ChannelResetError);
    await until(() => server.stats().resetsIn === 1, 5000, 'the reset to arrive');
    assert.equal(client.stats().resetsOut, 1);
    assert.equal(client.stats().resetsIn, 0);
    assert.equal(server.stats().resetsOut, 0);
    const resetLogged = serverLog.records.find((r) => r.event === 'channel-reset');
    assert.equal(resetLogged?.level, 'debug');
    assert.equal(resetLogged?.direction, 'in');
    assert.equal(resetLogged?.channel, channels[0]!.id);
    assert.ok(resetLogged?.error instanceof ChannelResetError);
    assert.ok(clientLog.records.some((r) => r.event === 'channel-reset' && r.direction === 'out'));
  } finally {
    await pair.close();
  }
});

test('a writer that spends the peer window stalls: counted once, logged, and stats() shows it until the reader reads', async () => {
  const log = recorder();
  const pair = await sessionPair({ client: { logger: log.logger } });
  try {
    const { client, server } = pair;
    const accepted = server.accept();
    const channel = client.dial();
    channel.write(Buffer.alloc(300 * 1024)); // more than the initial 256 KiB window
    const inbound = await accepted;
    inbound.pause(); // reads nothing: no Window Update
    await until(() => channel.stats().stalled, 5000, 'the stall');
    assert.equal(client.stats().windowStalls, 1);
    const stalled = channel.stats();
    assert.equal(stalled.sendWindow, 0);
    assert.equal(stalled.bytesOut, 256 * 1024);
    assert.equal(stalled.queuedBytes, 300 * 1024 - 256 * 1024);
    const logged = log.records.filter((r) => r.event === 'window-stall');
    assert.equal(logged.length, 1);
    assert.equal(logged[0]!.level, 'debug');
    assert.equal(logged[0]!.channel, channel.id);
    inbound.resume();
    await until(() => channel.stats().queuedBytes === 0, 5000, 'the rest sent');
    assert.equal(channel.stats().stalled, false);
    assert.equal(channel.stats().bytesOut, 300 * 1024);
  } finally {
    await pair.close();
  }
});

test('the logger hears the lifecycle: open, Go Away sent and received, clean close, with levels', async () => {
  const clientLog = recorder();
  const serverLog = recorder();
  const pair = await sessionPair({ client: { logger: clientLog.logger }, server: { logger: serverLog.logger } });
  const { client, server } = pair;
  await Promise.all([client.close(), server.closed]);
  assert.deepEqual(clientLog.events(), ['session-open', 'goaway-sent', 'session-close']);
  assert.deepEqual(serverLog.events(), ['session-open', 'goaway-received', 'session-close']);
  for (const r of [...clientLog.records, ...serverLog.records]) {
    assert.ok(LOG_LEVELS.includes(r.level));
    assert.match(formatLogRecord(r), new RegExp(`^${r.role} ${r.level} ${r.event}: `));
  }
  assert.equal(clientLog.records[0]!.role, 'client');
  assert.equal(clientLog.records[0]!.session, client);
  assert.equal(clientLog.records[1]!.code, 0);
  assert.equal(serverLog.records[1]!.direction, 'in');
  assert.equal(clientLog.records[2]!.level, 'info');
  assert.equal(clientLog.records[2]!.error, undefined);
  await pair.close();
});

test('a protocol error is logged at error level, a keep-alive timeout at warn, each before the session-close that follows', async () => {
  {
    const [raw, socket] = memoryPipe();
    const log = recorder();
    const session = multiplexedServer(socket, { keepAliveInterval: 0, logger: log.logger });
    const peer = new RawPeer(raw);
    peer.send(frame(FrameType.data, 0, 0, 4)); // Data on channel 0
    await session.closed.catch(() => {});
    const events = log.events();
    assert.deepEqual(events.slice(-3), ['protocol-error', 'goaway-sent', 'session-close']);
    const [protocolError, goAway, closed] = log.records.slice(-3);
    assert.equal(protocolError!.level, 'error');
    assert.equal(goAway!.code, 1);
    assert.equal(closed!.level, 'warn');
    assert.equal(closed!.error, session.closeError);
    raw.destroy();
  }
  {
    // A rule of one channel broken (its window overrun): the record names the channel.
    const [raw, socket] = memoryPipe();
    const log = recorder();
    const session = multiplexedServer(socket, { keepAliveInterval: 0, logger: log.logger });
    const peer = new RawPeer(raw);
    peer.send(frame(FrameType.data, Flag.syn, 7, 262145));
    await session.closed.catch(() => {});
    const protocolError = log.records.find((r) => r.event === 'protocol-error');
    assert.equal(protocolError?.channel, 7);
    raw.destroy();
  }
  {
    const [raw, socket] = memoryPipe();
    const log = recorder();
    const session = multiplexedClient(socket, { keepAliveInterval: 50, keepAliveTimeout: 100, logger: log.logger });
    new RawPeer(raw, false); // answers no ping
    // (the session's own ping deadline is unref'd and a memory pipe holds no handle: keep the loop alive)
    const alive = setInterval(() => {}, 1000);
    await session.closed.catch(() => {});
    clearInterval(alive);
    const timeout = log.records.find((r) => r.event === 'keepalive-timeout');
    assert.equal(timeout?.level, 'warn');
    assert.equal((timeout?.error as { code?: string } | undefined)?.code, 'ERR_MUX_KEEPALIVE_TIMEOUT');
    assert.equal(log.events().at(-1), 'session-close');
    raw.destroy();
  }
});

test('a dial the peer never acknowledges is reset at its open timeout and logged as a warning', async () => {
  const [raw, socket] = memoryPipe();
  const log = recorder();
  const session = multiplexedClient(socket, { keepAliveInterval: 0, logger: log.logger });
  const peer = new RawPeer(raw); // reads the SYN, never answers it
  try {
    const channel = session.dial({ openTimeout: 50 });
    channel.on('error', () => {});
    channel.write('hello');
    // (the open-timeout timer is unref'd: polling keeps the test's event loop alive meanwhile)
    await until(() => channel.destroyed, 5000, 'the open timeout');
    const reset = log.records.find((r) => r.event === 'channel-reset');
    assert.equal(reset?.level, 'warn');
    assert.equal(reset?.direction, 'out');
    assert.equal((reset?.error as { code?: string } | undefined)?.code, 'ERR_MUX_OPEN_TIMEOUT');
    assert.equal(session.stats().resetsOut, 1);
    await until(() => peer.frames.some((f) => f.streamId === channel.id && (f.flags & 0x8) !== 0), 5000, 'the RST');
  } finally {
    session.destroy();
    raw.destroy();
  }
});

test('dials that time out still waiting in the ACK backlog (their SYN never left) are logged as open timeouts too', async () => {
  const [raw, socket] = memoryPipe();
  const log = recorder();
  const session = multiplexedClient(socket, { keepAliveInterval: 0, logger: log.logger, ackBacklog: 1 });
  const peer = new RawPeer(raw); // never acknowledges
  try {
    // The first holds the backlog's one slot past the others' deadlines, so theirs never leave (with the same
    // deadline, one freed by the first's reset could leave before its own sweep on a busy machine).
    const channels = [80, 30, 30].map((openTimeout) => session.dial({ openTimeout }).on('error', () => {}));
    for (const channel of channels) channel.write('x');
    await until(() => channels.every((c) => c.destroyed), 5000, 'the open timeouts');
    const resets = log.records.filter((r) => r.event === 'channel-reset');
    assert.deepEqual(
      resets.map((r) => [r.channel, r.level, (r.error as { code?: string } | undefined)?.code]),
      [channels[1]!, channels[2]!, channels[0]!].map((c) => [c.id, 'warn', 'ERR_MUX_OPEN_TIMEOUT']),
    );
    assert.equal(session.stats().resetsOut, 1, 'one RST went: the others never reached the peer');
    assert.equal(peer.frames.filter((f) => (f.flags & Flag.syn) !== 0 && f.type !== FrameType.ping).length, 1);
  } finally {
    session.destroy();
    raw.destroy();
  }
});

test('a dial the peer never took before it closed after its Go Away 0 is counted and logged as refused', async () => {
  const [raw, socket] = memoryPipe();
  const log = recorder();
  const session = multiplexedClient(socket, { keepAliveInterval: 0, logger: log.logger });
  const peer = new RawPeer(raw);
  try {
    const channel = session.dial();
    const failed = once(channel, 'error');
    channel.write('x');
    await until(() => peer.frames.some((f) => (f.flags & Flag.syn) !== 0), 2000, 'the SYN');
    peer.send(frame(FrameType.goAway, 0, 0, 0));
    await new Promise((resolve) => setTimeout(resolve, 20));
    raw.end();
    const [error] = (await failed) as [Error];
    assert.ok(error instanceof ChannelRefusedError);
    assert.equal(session.stats().refusalsIn, 1);
    const refused = log.records.find((r) => r.event === 'channel-refused');
    assert.equal(refused?.direction, 'in');
    assert.equal(refused?.channel, channel.id);
  } finally {
    session.destroy();
    raw.destroy();
  }
});

test("a Go Away with an error code after a normal one (a peer that failed while closing) is heard: logged, and the session's error", async () => {
  const [raw, socket] = memoryPipe();
  const log = recorder();
  const session = multiplexedClient(socket, { keepAliveInterval: 0, logger: log.logger });
  const peer = new RawPeer(raw);
  try {
    const channel = session.dial();
    channel.on('error', () => {});
    channel.write('x');
    await until(() => peer.frames.some((f) => (f.flags & Flag.syn) !== 0), 2000, 'the SYN');
    peer.send(frame(FrameType.windowUpdate, Flag.ack, channel.id, 0), frame(FrameType.goAway, 0, 0, 0));
    await new Promise((resolve) => setTimeout(resolve, 20));
    peer.send(frame(FrameType.goAway, 0, 0, 1));
    await new Promise((resolve) => setTimeout(resolve, 20));
    raw.end();
    await session.closed.catch(() => {});
    assert.deepEqual(
      log.records.filter((r) => r.event === 'goaway-received').map((r) => [r.code, r.level]),
      [
        [0, 'info'],
        [1, 'warn'],
      ],
    );
    assert.equal((session.closeError as { goAwayCode?: number } | undefined)?.goAwayCode, 1);
  } finally {
    session.destroy();
    raw.destroy();
  }
});

test('a logger that throws does not break the session', async () => {
  const pair = await sessionPair({
    client: {
      logger: () => {
        throw new Error('logger bug');
      },
    },
  });
  const { client, server } = pair;
  server.on('channel', (channel) => channel.end('ok'));
  const channel = client.dial();
  channel.end();
  assert.equal((await readAll(channel)).toString(), 'ok');
  await client.close();
  await pair.close();
});

test('channelOpen and channelClose report each channel once, with its final figures and why it ended', async () => {
  const pair = await sessionPair();
  try {
    const { client, server } = pair;
    const opened: ChannelStats[] = [];
    const closed: [ChannelStats, Error | undefined][] = [];
    client.on('channelOpen', (stats) => opened.push(stats));
    client.on('channelClose', (stats, error) => closed.push([stats, error]));
    server.on('channel', (channel) => {
      channel.on('error', () => {});
      channel.on('data', () => {});
      channel.on('end', () => channel.end('done'));
    });
    const clean = client.dial();
    clean.end('hello');
    await readAll(clean);
    const aborted = client.dial();
    aborted.write('abc');
    await until(() => aborted.stats().bytesOut === 3, 5000, 'the write sent');
    aborted.destroy();
    await until(() => closed.length === 2, 5000, 'both closes');
    // Once: the session's close reports neither channel again, and no report comes late.
    await client.close();
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(closed.length, 2, 'two channels, two channelClose events');
    assert.deepEqual(
      opened.map((s) => [s.id, s.outbound, s.bytesOut]),
      [
        [clean.id, true, 0],
        [aborted.id, true, 0],
      ],
    );
    const [first, second] = closed;
    assert.equal(first![0].id, clean.id);
    assert.equal(first![0].state, 'closed');
    assert.equal(first![0].bytesOut, 5);
    assert.equal(first![0].bytesIn, 4);
    assert.equal(first![1], undefined);
    assert.equal(second![0].id, aborted.id);
    assert.equal(second![0].state, 'reset');
    assert.equal(second![0].bytesOut, 3);
    assert.ok(second![1] instanceof ChannelResetError);
  } finally {
    await pair.close();
  }
});

test('without a logger nothing is reported: a muxwire:log subscriber added later hears nothing from that session', async () => {
  const pair = await sessionPair();
  const heard: unknown[] = [];
  const onLog = (message: unknown): void => {
    heard.push(message);
  };
  diagnostics.subscribe(LOG_CHANNEL, onLog);
  try {
    const { client, server } = pair;
    assert.equal(client.options.logger, null);
    server.on('channel', (channel) => channel.on('error', () => {}).resume());
    const channel = client.dial();
    channel.write('x');
    await until(() => server.stats().dataBytesIn === 1, 5000, 'the byte');
    channel.destroy();
    await until(() => server.stats().resetsIn === 1, 5000, 'the reset');
    await client.close();
    assert.deepEqual(heard, []);
  } finally {
    diagnostics.unsubscribe(LOG_CHANNEL, onLog);
    await pair.close();
  }
});

test('diagnostics_channel: muxwire:session announces each Node session, muxwire:log carries its records', async () => {
  const sessions: unknown[] = [];
  const records: LogRecord[] = [];
  const onSession = (message: unknown): void => {
    sessions.push((message as { session: unknown }).session);
  };
  const onLog = (message: unknown): void => {
    records.push(message as LogRecord);
  };
  diagnostics.subscribe(SESSION_CHANNEL, onSession);
  diagnostics.subscribe(LOG_CHANNEL, onLog);
  const own = recorder();
  const [a, b] = memoryPipe();
  const client = lightClient(a, { keepAliveInterval: 0, logger: own.logger });
  const server = lightServer(b, { keepAliveInterval: 0 });
  try {
    assert.deepEqual(sessions, [client, server]);
    server.on('channel', (channel) => channel.on('error', () => {}).resume());
    const channel = client.dial();
    channel.write(new Uint8Array(10));
    await until(() => server.stats().dataBytesIn === 10, 5000, 'the bytes');
    channel.destroy();
    await until(
      () => records.some((r) => r.session === server && r.event === 'channel-reset'),
      5000,
      'the reset record',
    );
    await client.close();
    const fromClient = records.filter((r) => r.session === client).map((r) => r.event);
    assert.deepEqual(fromClient, ['session-open', 'channel-reset', 'goaway-sent', 'session-close']);
    // The application's own logger still gets every record too.
    assert.deepEqual(own.events(), fromClient);
    // LightChannel and LightSession have the same figures.
    assert.equal(channel.stats().bytesOut, 10);
    assert.equal(client.stats().resetsOut, 1);
  } finally {
    diagnostics.unsubscribe(SESSION_CHANNEL, onSession);
    diagnostics.unsubscribe(LOG_CHANNEL, onLog);
    client.destroy();
    server.destroy();
  }
});

test('NODE_DEBUG=muxwire prints the records on stderr', async () => {
  const entry = fileURLToPath(new URL('../src/index.js', import.meta.url));
  const script = `
    const { multiplexedClient, multiplexedServer } = await import(${JSON.stringify(entry)});
    const { Duplex } = await import('node:stream');
    let a, b;
    a = new Duplex({ read() {}, write(c, e, cb) { b.push(c); cb(); }, final(cb) { b.push(null); cb(); } });
    b = new Duplex({ read() {}, write(c, e, cb) { a.push(c); cb(); }, final(cb) { a.push(null); cb(); } });
    const client = multiplexedClient(a, { keepAliveInterval: 0 });
    const server = multiplexedServer(b, { keepAliveInterval: 0 });
    await client.close();
    await server.closed;
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...process.env, NODE_DEBUG: 'muxwire' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const timer = setTimeout(() => child.kill(), 30_000);
  const [code] = (await once(child, 'exit')) as [number];
  clearTimeout(timer);
  assert.equal(code, 0, stderr);
  // Each session's lines carry its number, in the order the sessions logged first.
  assert.match(stderr, /^MUXWIRE \d+: session 1 client debug session-open: session opened$/m);
  assert.match(stderr, /^MUXWIRE \d+: session 2 server debug session-open: session opened$/m);
  assert.match(stderr, /^MUXWIRE \d+: session 1 client info goaway-sent: /m);
  assert.match(stderr, /^MUXWIRE \d+: session 2 server info goaway-received: /m);
  assert.match(stderr, /^MUXWIRE \d+: session 2 server info session-close: session closed cleanly$/m);
  assert.match(stderr, /^MUXWIRE \d+: session 1 client info session-close: session closed cleanly$/m);
});

test('WebSession and WebChannel have the same stats() and logger', async () => {
  const aToB = new TransformStream<Uint8Array, Uint8Array>();
  const bToA = new TransformStream<Uint8Array, Uint8Array>();
  const log = recorder();
  const a = new WebSession(streamTransport({ readable: bToA.readable, writable: aToB.writable }), 'client', {
    keepAliveInterval: 0,
    logger: log.logger,
    logRecords,
  });
  const b = new WebSession(streamTransport({ readable: aToB.readable, writable: bToA.writable }), 'server', {
    keepAliveInterval: 0,
  });
  try {
    const channel = a.dial();
    const accepted = b.accept();
    const writer = channel.writable.getWriter();
    await writer.write(new Uint8Array(1000));
    await writer.close();
    const peer = await accepted;
    let received = 0;
    for await (const chunk of peer.readable as unknown as AsyncIterable<Uint8Array>) received += chunk.length;
    assert.equal(received, 1000);
    assert.equal(channel.stats().bytesOut, 1000);
    assert.equal(peer.stats().bytesIn, 1000);
    await until(() => b.stats().bytesIn === a.stats().bytesOut, 5000, 'bytes in flight');
    assert.equal(a.stats().dataBytesOut, 1000);
    assert.equal(a.stats().bytesOut, a.stats().framesOut * HEADER_SIZE + 1000);
    assert.deepEqual(log.events(), ['session-open']);
  } finally {
    a.destroy();
    b.destroy();
  }
});

test('connectWebSocket with a logger but no logRecords, or multiplex without its codec, rejects before it connects', async () => {
  let connections = 0;
  const server = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  server.on('connection', (socket) => {
    connections++;
    socket.terminate();
  });
  await once(server, 'listening');
  try {
    const url = `ws://127.0.0.1:${(server.address() as { port: number }).port}/`;
    await assert.rejects(connectWebSocket(url, { WebSocket: WsWebSocket, logger: () => {} }), /logRecords/);
    await assert.rejects(connectWebSocket(url, { WebSocket: WsWebSocket, protocol: 'multiplex' }), /multiplex codec/);
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(connections, 0, 'no connection made only to be dropped');
  } finally {
    server.close();
  }
});

test('a WebSession given a logger without logRecords throws a TypeError that names logRecords', () => {
  const pipe = new TransformStream<Uint8Array, Uint8Array>();
  const transport = streamTransport({ readable: pipe.readable, writable: pipe.writable });
  assert.throws(
    () => new WebSession(transport, 'client', { keepAliveInterval: 0, logger: () => undefined }),
    (error: unknown) => error instanceof TypeError && error.message.includes('logRecords'),
  );
  transport.destroy();
});

test('the logger option must be a function or null', () => {
  const [a] = memoryPipe();
  assert.throws(() => multiplexedClient(a, { logger: 'yes' as unknown as () => void }), TypeError);
  a.destroy();
});

test("a destroyed channel's stats() show no buffered bytes: what it held was dropped (Channel, light, WebChannel)", async () => {
  const data = pseudoRandomBytes(5000, 11);
  // Node's Duplex channels.
  {
    const pair = await sessionPair();
    try {
      const accepted = pair.server.accept();
      const channel = pair.client.dial();
      channel.write(data);
      const inbound = await accepted;
      await until(() => inbound.stats().bufferedBytes === data.length, 5000, 'the data to arrive unread');
      inbound.destroy();
      assert.equal(inbound.stats().bufferedBytes, 0);
      assert.equal(pair.server.stats().bufferedBytes, 0);
    } finally {
      await pair.close();
    }
  }
  // Light channels.
  {
    const [a, b] = memoryPipe();
    const client = lightClient(a, { keepAliveInterval: 0 });
    const server = lightServer(b, { keepAliveInterval: 0 });
    try {
      const accepted = server.accept();
      client.dial().write(data);
      const inbound = await accepted;
      await until(() => inbound.stats().bufferedBytes === data.length, 5000, 'the data to arrive unread');
      inbound.destroy();
      assert.equal(inbound.stats().bufferedBytes, 0);
      assert.equal(server.stats().bufferedBytes, 0);
    } finally {
      client.destroy();
      server.destroy();
    }
  }
  // Web Streams channels: the readable cancelled and the writable aborted.
  {
    const aToB = new TransformStream<Uint8Array, Uint8Array>();
    const bToA = new TransformStream<Uint8Array, Uint8Array>();
    const a = new WebSession(streamTransport({ readable: bToA.readable, writable: aToB.writable }), 'client', {
      keepAliveInterval: 0,
    });
    const b = new WebSession(streamTransport({ readable: aToB.readable, writable: bToA.writable }), 'server', {
      keepAliveInterval: 0,
    });
    try {
      const accepted = b.accept();
      const writer = a.dial().writable.getWriter();
      await writer.write(data);
      const inbound = await accepted;
      await until(() => inbound.stats().bufferedBytes === data.length, 5000, 'the data to arrive unread');
      inbound.reset();
      assert.equal(inbound.stats().bufferedBytes, 0);
      assert.equal(b.stats().bufferedBytes, 0);
    } finally {
      a.destroy();
      b.destroy();
    }
  }
});

test('a WebChannel kept readable after its session failed shows what it still holds in stats().bufferedBytes', async () => {
  const [a, b] = corePipe();
  const client = new WebSession(a, 'client', { keepAliveInterval: 0 });
  const server = new WebSession(b, 'server', { keepAliveInterval: 0 });
  client.closed.catch(() => {});
  server.closed.catch(() => {});
  const accepted = server.accept();
  const writer = client.dial().writable.getWriter();
  await writer.write(new TextEncoder().encode('hello, kept data'));
  const inbound = await accepted;
  await until(() => inbound.stats().bufferedBytes === 16, 5000, 'the data to arrive unread');
  a.destroy(); // no FIN: the server's session fails with the channel open, which keeps its data to be read
  await server.closed.catch(() => {});
  assert.equal(inbound.stats().bufferedBytes, 16);
  const { value } = await inbound.readable.getReader().read();
  assert.equal(new TextDecoder().decode(value), 'hello, kept data');
});
