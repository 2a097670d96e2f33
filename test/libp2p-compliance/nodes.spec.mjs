/**
 * Real libp2p nodes (`libp2p` over `@libp2p/tcp` on 127.0.0.1, plaintext encryption) with muxwire as their
 * stream muxer: muxwire on both nodes, and muxwire against libp2p's own yamux (`@chainsafe/libp2p-yamux`)
 * with each in either role. The muxer in use is checked on both connections, not assumed. Run by mocha
 * from this folder (see run.test.ts, which `npm test` runs).
 */
import './with-resolvers.mjs';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';

const { createLibp2p } = await import('libp2p');
const { tcp } = await import('@libp2p/tcp');
const { plaintext } = await import('@libp2p/plaintext');
const { echo } = await import('@libp2p/echo');
const { ping } = await import('@libp2p/ping');
const { yamux } = await import('@chainsafe/libp2p-yamux');
const { muxwire, MuxwireMuxer } = await import('../../dist/src/libp2p/index.js');

const MiB = 1024 * 1024;
/** Room for 1,000 concurrent streams on each muxer and protocol (libp2p's defaults are lower). */
const STREAM_LIMIT = 2048;
const MUXERS = {
  muxwire: () => muxwire({ maxInboundStreams: STREAM_LIMIT, maxOutboundStreams: STREAM_LIMIT }),
  yamux: () => yamux({ maxInboundStreams: STREAM_LIMIT, maxOutboundStreams: STREAM_LIMIT }),
};
/** [dialling node's muxer, listening node's muxer]. */
const PAIRS = [
  ['muxwire', 'muxwire'],
  ['muxwire', 'yamux'],
  ['yamux', 'muxwire'],
];
const SINK = '/muxwire-test/sha256/1.0.0';
const DRAIN = '/muxwire-test/drain/1.0.0';
const PROTOCOL_LIMITS = { maxInboundStreams: STREAM_LIMIT, maxOutboundStreams: STREAM_LIMIT };
/** The libp2p errors a stream may end with when the node at the other end stops. */
const PEER_GONE = ['StreamResetError', 'ConnectionClosedError'];

async function startNode(muxer) {
  const node = await createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [plaintext()],
    streamMuxers: [MUXERS[muxer]()],
    services: { echo: echo(PROTOCOL_LIMITS), ping: ping() },
  });
  // Reads a stream to its end and answers with the byte count (8 bytes) and the SHA-256 of what it read.
  await node.handle(
    SINK,
    async (stream) => {
      const hash = createHash('sha256');
      let length = 0;
      for await (const data of stream) {
        for (const chunk of data instanceof Uint8Array ? [data] : data) hash.update(chunk);
        length += data.byteLength;
      }
      const answer = new Uint8Array(40);
      new DataView(answer.buffer).setBigUint64(0, BigInt(length));
      answer.set(hash.digest(), 8);
      stream.send(answer);
      await stream.close();
    },
    PROTOCOL_LIMITS,
  );
  // Reads and drops everything, never answering.
  await node.handle(
    DRAIN,
    async (stream) => {
      for await (const data of stream) void data;
    },
    PROTOCOL_LIMITS,
  );
  return node;
}

/** Resolves on the stream's next 'drain'; rejects if it closes first (with its error, if any). */
function drained(stream) {
  return new Promise((resolve, reject) => {
    const onDrain = () => {
      stream.removeEventListener('close', onClose);
      resolve();
    };
    const onClose = (event) => {
      stream.removeEventListener('drain', onDrain);
      reject(event.error ?? new Error('the stream closed'));
    };
    stream.addEventListener('drain', onDrain, { once: true });
    stream.addEventListener('close', onClose, { once: true });
  });
}

/** Sends `chunk` as long as the stream is writable, waiting for 'drain' whenever `send()` says so. */
async function pump(stream, chunk) {
  while (stream.writeStatus === 'writable') {
    if (!stream.send(chunk)) await drained(stream);
  }
}

/** Reads a stream to its end into one array. */
async function readAll(stream) {
  const parts = [];
  let length = 0;
  for await (const data of stream) {
    parts.push(data.subarray());
    length += data.byteLength;
  }
  const all = new Uint8Array(length);
  let at = 0;
  for (const part of parts) {
    all.set(part, at);
    at += part.byteLength;
  }
  return all;
}

function within(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} took over ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** The muxer under a libp2p connection: muxwire's shows as a MuxwireMuxer; any other is libp2p's yamux. */
function muxerOf(connection) {
  assert.equal(connection.multiplexer, '/yamux/1.0.0');
  const muxer = connection.muxer;
  assert.ok(muxer !== undefined, 'the connection has no muxer');
  return muxer instanceof MuxwireMuxer ? 'muxwire' : muxer.constructor.name;
}

/** Asserts that two byte arrays hold the same bytes (whatever their classes: Buffer, Uint8Array). */
function assertSameBytes(actual, expected, what) {
  const a = Buffer.from(actual.buffer, actual.byteOffset, actual.byteLength);
  const b = Buffer.from(expected.buffer, expected.byteOffset, expected.byteLength);
  assert.ok(a.equals(b), `${what}: ${a.byteLength} bytes differ from the ${b.byteLength} expected`);
}

for (const [dialerMuxer, listenerMuxer] of PAIRS) {
  describe(`libp2p nodes: ${dialerMuxer} dials ${listenerMuxer}`, function () {
    this.timeout(120_000);
    let dialer;
    let listener;
    let connection;

    beforeEach(async () => {
      [dialer, listener] = await Promise.all([startNode(dialerMuxer), startNode(listenerMuxer)]);
      connection = await dialer.dial(listener.getMultiaddrs()[0]);
      const theirs = listener.getConnections(dialer.peerId)[0];
      assert.equal(muxerOf(connection), dialerMuxer === 'muxwire' ? 'muxwire' : 'YamuxMuxer');
      assert.equal(muxerOf(theirs), listenerMuxer === 'muxwire' ? 'muxwire' : 'YamuxMuxer');
    });

    afterEach(async () => {
      await Promise.all([dialer?.stop(), listener?.stop()]);
    });

    it('echo and ping work both ways', async () => {
      const message = randomBytes(10_000);
      const echoed = await dialer.services.echo.echo(listener.peerId, message);
      assertSameBytes(echoed.subarray(), message, 'echoed to the dialler');
      const back = await listener.services.echo.echo(dialer.peerId, message);
      assertSameBytes(back.subarray(), message, 'echoed to the listener');
      const rtts = [await dialer.services.ping.ping(listener.peerId), await listener.services.ping.ping(dialer.peerId)];
      for (const rtt of rtts) assert.ok(rtt >= 0 && rtt < 5_000, `ping answered in ${rtt} ms`);
      assert.equal(dialer.getConnections(listener.peerId).length, 1, 'one connection carried it all');
    });

    it('1,000 concurrent echo streams each get their own bytes back', async () => {
      const messages = Array.from({ length: 1000 }, (_, i) => {
        const message = randomBytes(64 + (i % 50) * 40);
        message.writeUInt32BE(i, 0);
        return message;
      });
      const echoed = await within(
        Promise.all(messages.map((message) => dialer.services.echo.echo(listener.peerId, message))),
        60_000,
        '1,000 concurrent echoes',
      );
      echoed.forEach((bytes, i) => assertSameBytes(bytes.subarray(), messages[i], `stream ${i}`));
      assert.equal(dialer.getConnections(listener.peerId).length, 1, 'one connection carried all the streams');
    });

    it('64 MiB on one stream arrive intact (length and SHA-256 checked by the receiver)', async () => {
      const stream = await dialer.dialProtocol(listener.peerId, SINK);
      const hash = createHash('sha256');
      const total = 64 * MiB;
      const chunkSize = 256 * 1024;
      const answer = readAll(stream);
      for (let sent = 0; sent < total; sent += chunkSize) {
        const chunk = randomBytes(chunkSize);
        hash.update(chunk);
        if (!stream.send(chunk)) await drained(stream);
      }
      await stream.close();
      const reply = await within(answer, 60_000, "the receiver's answer");
      assert.equal(reply.byteLength, 40);
      assert.equal(new DataView(reply.buffer, reply.byteOffset).getBigUint64(0), BigInt(total));
      assertSameBytes(reply.subarray(8), hash.digest(), 'the SHA-256 of what arrived');
    });

    for (const stopping of ['listener', 'dialler']) {
      const writing = stopping === 'listener' ? 'dialler' : 'listener';
      const writerMuxer = writing === 'dialler' ? dialerMuxer : listenerMuxer;
      const outcome =
        writerMuxer === 'muxwire'
          ? `fail with ${PEER_GONE.join(' or ')}`
          : "end (libp2p's yamux reports no error when the connection drops)";
      it(`when the ${stopping} node stops mid-transfer, the ${writing}'s ${writerMuxer} streams ${outcome}, and nothing is unhandled`, async () => {
        const unhandled = [];
        const onUnhandled = (reason) => unhandled.push(reason);
        process.on('unhandledRejection', onUnhandled);
        process.on('uncaughtException', onUnhandled);
        try {
          const [writer, stopper] = writing === 'dialler' ? [dialer, listener] : [listener, dialer];
          // Over the connection already open (the listener opens its streams on it too).
          const streams = await Promise.all(
            Array.from({ length: 10 }, () => writer.dialProtocol(stopper.peerId, DRAIN)),
          );
          assert.equal(writer.getConnections(stopper.peerId).length, 1);
          const closes = streams.map(
            (stream) =>
              new Promise((resolve) => {
                stream.addEventListener('close', resolve, { once: true });
              }),
          );
          const chunk = new Uint8Array(16 * 1024);
          const pumps = streams.map((stream) =>
            pump(stream, chunk).then(
              () => undefined,
              (error) => error,
            ),
          );
          await new Promise((resolve) => setTimeout(resolve, 200));
          assert.ok(
            streams.every((stream) => stream.status === 'open'),
            'every stream was still transferring',
          );
          await stopper.stop();
          const events = await within(Promise.all(closes), 10_000, `the ${writing}'s streams to close`);
          await within(Promise.all(pumps), 10_000, 'the writers to stop');
          for (const stream of streams) assert.notEqual(stream.status, 'open');
          if (writerMuxer === 'muxwire') {
            for (const event of events) {
              assert.ok(event.error !== undefined, 'a stream cut off by the peer ended without an error');
              assert.ok(
                PEER_GONE.includes(event.error.name),
                `unexpected error ${event.error.name}: ${event.error.message}`,
              );
            }
          }
          await within(
            (async () => {
              while (writer.getConnections(stopper.peerId).length > 0)
                await new Promise((resolve) => setTimeout(resolve, 20));
            })(),
            10_000,
            `the ${writing} to drop the connection`,
          );
          // Let anything left over settle before looking for unhandled rejections.
          await new Promise((resolve) => setTimeout(resolve, 100));
          assert.deepEqual(unhandled.map(String), []);
        } finally {
          process.off('unhandledRejection', onUnhandled);
          process.off('uncaughtException', onUnhandled);
        }
      });
    }
  });
}
