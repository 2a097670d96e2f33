import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  Flag,
  FrameType,
  HEADER_SIZE,
  decodeHeader,
  encodeHeader,
  headerBytes,
  type FrameHeader,
} from '../src/core/frame.js';
import { FrameDecoder, type FrameSink } from '../src/core/decoder.js';

test('header golden bytes: a Window Update with SYN on channel 1 announcing 65536', () => {
  assert.deepEqual(
    Buffer.from(headerBytes(FrameType.windowUpdate, Flag.syn, 1, 65536)).toString('hex'),
    '000100010000000100010000',
  );
});

test('header golden bytes: Data with ACK|FIN on channel 0x01020304, length 0xfffffffe', () => {
  assert.equal(
    Buffer.from(headerBytes(FrameType.data, Flag.ack | Flag.fin, 0x01020304, 0xfffffffe)).toString('hex'),
    '000000060102030' + '4fffffffe',
  );
});

test('header golden bytes: Ping ACK and Go Away protocol error', () => {
  assert.equal(Buffer.from(headerBytes(FrameType.ping, Flag.ack, 0, 7)).toString('hex'), '000200020000000000000007');
  assert.equal(Buffer.from(headerBytes(FrameType.goAway, 0, 0, 1)).toString('hex'), '000300000000000000000001');
});

test('header round trip for every field value range', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 3 }),
      fc.integer({ min: 0, max: 0xffff }),
      fc.nat({ max: 0xffffffff }),
      fc.nat({ max: 0xffffffff }),
      (type, flags, id, length) => {
        const bytes = new Uint8Array(HEADER_SIZE + 3);
        encodeHeader(bytes, 3, type, flags, id, length);
        const out = decodeHeader(bytes, 3, { version: 9, type: 0, flags: 0, streamId: 0, length: 0 });
        assert.deepEqual(out, { version: 0, type, flags, streamId: id, length });
      },
    ),
    { numRuns: 500, seed: 42 },
  );
});

interface Event {
  kind: 'header' | 'payload' | 'end' | 'error';
  header?: FrameHeader;
  bytes?: Buffer;
  message?: string;
}

function recorder(): { sink: FrameSink; events: Event[] } {
  const events: Event[] = [];
  return {
    events,
    sink: {
      onHeader: (h) => events.push({ kind: 'header', header: { ...h } }),
      onPayload: (c, start, end) => events.push({ kind: 'payload', bytes: Buffer.from(c.subarray(start, end)) }),
      onFrameEnd: (h) => events.push({ kind: 'end', header: { ...h } }),
      onDecodeError: (message) => events.push({ kind: 'error', message }),
    },
  };
}

/** Collapses consecutive payload pieces so that different chunkings compare equal. */
function normalize(events: Event[]): unknown[] {
  const out: Event[] = [];
  for (const e of events) {
    const last = out[out.length - 1];
    if (e.kind === 'payload' && last?.kind === 'payload') last.bytes = Buffer.concat([last.bytes!, e.bytes!]);
    else out.push({ ...e });
  }
  return out.map((e) => ({ ...e, bytes: e.bytes?.toString('hex') }));
}

const stream = Buffer.concat([
  headerBytes(FrameType.windowUpdate, Flag.syn, 1, 0),
  headerBytes(FrameType.data, 0, 1, 5),
  Buffer.from('hello'),
  headerBytes(FrameType.ping, Flag.syn, 0, 99),
  headerBytes(FrameType.data, Flag.fin, 1, 0),
  headerBytes(FrameType.data, 0, 3, 300),
  Buffer.alloc(300, 7),
  headerBytes(FrameType.goAway, 0, 0, 0),
]);

test('decoder yields the same events whatever the chunk boundaries (split at every byte)', () => {
  const whole = recorder();
  new FrameDecoder(whole.sink).push(stream);
  assert.equal(whole.events.filter((e) => e.kind === 'end').length, 6);
  const expected = normalize(whole.events);
  for (let cut = 1; cut < stream.length; cut++) {
    const r = recorder();
    const decoder = new FrameDecoder(r.sink);
    decoder.push(stream.subarray(0, cut));
    decoder.push(stream.subarray(cut));
    assert.deepEqual(normalize(r.events), expected, `split at ${cut}`);
  }
  const oneByOne = recorder();
  const decoder = new FrameDecoder(oneByOne.sink);
  for (const byte of stream) decoder.push(Uint8Array.of(byte));
  assert.deepEqual(normalize(oneByOne.events), expected);
});

test('decoder hands payload on as ranges of the input chunk, without copying', () => {
  const r = recorder();
  const ranges: [Uint8Array, number, number][] = [];
  const decoder = new FrameDecoder({ ...r.sink, onPayload: (c, start, end) => ranges.push([c, start, end]) });
  const chunk = Buffer.concat([headerBytes(FrameType.data, 0, 1, 1000), Buffer.alloc(1000, 1)]);
  decoder.push(chunk);
  assert.equal(ranges.length, 1);
  assert.equal(ranges[0]![0], chunk, 'the input chunk itself');
  assert.deepEqual(ranges[0]!.slice(1), [12, 1012]);
});

test('decoder rejects a wrong version and an unknown type, and stops', () => {
  for (const [bytes, message] of [
    [Buffer.from('010000000000000100000000', 'hex'), /version 1/],
    [Buffer.from('000400000000000100000000', 'hex'), /unknown frame type 4/],
  ] as const) {
    const r = recorder();
    const decoder = new FrameDecoder(r.sink);
    decoder.push(Buffer.concat([bytes, headerBytes(FrameType.ping, Flag.syn, 0, 1)]));
    assert.equal(r.events.length, 1);
    assert.equal(r.events[0]!.kind, 'error');
    assert.match(r.events[0]!.message!, message);
    assert.ok(decoder.isStopped);
  }
});

test('decoder holds at most a partial header: a 4 GiB length does not allocate', () => {
  const r = recorder();
  const decoder = new FrameDecoder(r.sink);
  decoder.push(headerBytes(FrameType.data, Flag.syn, 1, 0xffffffff));
  assert.equal(r.events[0]!.header!.length, 0xffffffff);
  decoder.push(Buffer.alloc(10));
  assert.equal(r.events.length, 2);
  assert.equal(decoder.pendingHeaderBytes, 0);
});
