// The tiny application protocol spoken on every channel, so that every result is verified.
//
// A channel whose first byte is MAGIC[0] starts with a 24-byte SINK preamble; any other first byte
// makes it an ECHO channel (the server writes back every byte and ends when the client ends), which
// is what open-10k ("hello"), rr-* (64-byte requests) and idle (one byte) use.
//
// SINK preamble: magic(4) op(1)=1 pad(3) tag(u32) blocks(u32, 0xffffffff = until stopped)
//                ackEveryBlocks(u32, 0 = only the final ack) reserved(u32)
// SINK data: 64 KiB blocks. Block b starts with tag(u32) b(u32) and ends with ~tag(u32) ~b(u32)
//   (big-endian); the server checks these 16 bytes of every block (wherever chunk boundaries fall),
//   so lost, duplicated, reordered or misframed bytes show up as stamp errors or a wrong count.
// COUNT preamble (bulk-cold), also 24 bytes: magic(4) op(1)=2 pad(3) bytesHigh(u32) bytesLow(u32) reserved(8);
//   then that many bytes of anything; the server counts them in a 'data' listener and writes "ok" and ends.
// SINK ack (server -> client), 24 bytes: magic(4) kind(u32: 1 progress, 2 final)
//   bytesHigh(u32) bytesLow(u32) stampErrors(u32) stampsChecked(u32)

export const MAGIC = Buffer.from([0xb3, 0x7c, 0x4d, 0x21]);
export const OP_SINK = 1;
export const OP_COUNT = 2;
/** The COUNT channel's answer once every byte arrived. */
export const COUNT_OK = 'ok';
export const PREAMBLE_LENGTH = 24;
export const ACK_LENGTH = 24;
export const ACK_PROGRESS = 1;
export const ACK_FINAL = 2;
export const BLOCK = 64 * 1024;
export const STAMP = 8;
export const UNBOUNDED = 0xffffffff;

export interface SinkPreamble {
  tag: number;
  blocks: number;
  ackEveryBlocks: number;
}

export function encodePreamble(p: SinkPreamble): Buffer {
  const b = Buffer.alloc(PREAMBLE_LENGTH);
  MAGIC.copy(b, 0);
  b[4] = OP_SINK;
  b.writeUInt32BE(p.tag >>> 0, 8);
  b.writeUInt32BE(p.blocks >>> 0, 12);
  b.writeUInt32BE(p.ackEveryBlocks >>> 0, 16);
  return b;
}

export function decodePreamble(b: Buffer): SinkPreamble {
  if (b.length < PREAMBLE_LENGTH || MAGIC.compare(b, 0, 4) !== 0 || b[4] !== OP_SINK) {
    throw new Error('bad SINK preamble');
  }
  return { tag: b.readUInt32BE(8), blocks: b.readUInt32BE(12), ackEveryBlocks: b.readUInt32BE(16) };
}

export function encodeCountPreamble(bytes: number): Buffer {
  const b = Buffer.alloc(PREAMBLE_LENGTH);
  MAGIC.copy(b, 0);
  b[4] = OP_COUNT;
  b.writeUInt32BE(Math.floor(bytes / 2 ** 32), 8);
  b.writeUInt32BE(bytes % 2 ** 32, 12);
  return b;
}

/** The operation of a SINK or COUNT preamble (at least PREAMBLE_LENGTH bytes). */
export function preambleOp(b: Buffer): number {
  if (b.length < PREAMBLE_LENGTH || MAGIC.compare(b, 0, 4) !== 0 || (b[4] !== OP_SINK && b[4] !== OP_COUNT)) {
    throw new Error('bad SINK/COUNT preamble');
  }
  return b[4];
}

export function decodeCountPreamble(b: Buffer): number {
  if (preambleOp(b) !== OP_COUNT) throw new Error('bad COUNT preamble');
  return b.readUInt32BE(8) * 2 ** 32 + b.readUInt32BE(12);
}

export interface Ack {
  kind: number;
  bytes: number;
  stampErrors: number;
  stampsChecked: number;
}

export function encodeAck(a: Ack): Buffer {
  const b = Buffer.alloc(ACK_LENGTH);
  MAGIC.copy(b, 0);
  b.writeUInt32BE(a.kind, 4);
  b.writeUInt32BE(Math.floor(a.bytes / 2 ** 32), 8);
  b.writeUInt32BE(a.bytes % 2 ** 32, 12);
  b.writeUInt32BE(a.stampErrors, 16);
  b.writeUInt32BE(a.stampsChecked, 20);
  return b;
}

export function decodeAck(b: Buffer, offset = 0): Ack {
  if (MAGIC.compare(b, offset, offset + 4) !== 0) throw new Error('bad ack magic');
  return {
    kind: b.readUInt32BE(offset + 4),
    bytes: b.readUInt32BE(offset + 8) * 2 ** 32 + b.readUInt32BE(offset + 12),
    stampErrors: b.readUInt32BE(offset + 16),
    stampsChecked: b.readUInt32BE(offset + 20),
  };
}

/** Deterministic filler for block bodies (xorshift32), so a run is reproducible. */
export function blockTemplate(seed = 0x9e3779b9): Buffer {
  const b = Buffer.allocUnsafe(BLOCK);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < BLOCK; i += 4) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b.writeUInt32LE(x, i);
  }
  return b;
}

/** A fresh block (never reused: some implementations keep a reference to written buffers). */
export function makeBlock(template: Buffer, tag: number, index: number): Buffer {
  const b = Buffer.allocUnsafe(BLOCK);
  template.copy(b);
  b.writeUInt32BE(tag >>> 0, 0);
  b.writeUInt32BE(index >>> 0, 4);
  b.writeUInt32BE(~tag >>> 0, BLOCK - 8);
  b.writeUInt32BE(~index >>> 0, BLOCK - 4);
  return b;
}

/** Incremental checker of block stamps over an arbitrarily chunked byte stream. */
export class StampChecker {
  received = 0;
  errors = 0;
  checked = 0;
  private range = 0; // index of the next stamp range: block = range >> 1, trailer when range & 1
  private rangeStart = 0; // absolute offset of that range
  private rangeBad = false;
  private readonly expected = Buffer.alloc(STAMP);

  constructor(private readonly tag: number) {
    this.prepare();
  }

  private prepare(): void {
    const block = this.range >>> 1;
    const trailer = (this.range & 1) === 1;
    this.rangeStart = block * BLOCK + (trailer ? BLOCK - STAMP : 0);
    this.expected.writeUInt32BE((trailer ? ~this.tag : this.tag) >>> 0, 0);
    this.expected.writeUInt32BE((trailer ? ~block : block) >>> 0, 4);
    this.rangeBad = false;
  }

  push(chunk: Buffer): void {
    const start = this.received;
    const end = start + chunk.length;
    this.received = end;
    while (this.rangeStart < end) {
      const from = Math.max(this.rangeStart, start);
      const to = Math.min(this.rangeStart + STAMP, end);
      for (let pos = from; pos < to; pos++) {
        if (chunk[pos - start] !== this.expected[pos - this.rangeStart]) this.rangeBad = true;
      }
      if (to < this.rangeStart + STAMP) break; // the rest of this stamp is in the next chunk
      this.checked++;
      if (this.rangeBad) this.errors++;
      this.range++;
      this.prepare();
    }
  }
}

export const RR_SIZE = 64;

/** A 64-byte request: 'R', the channel tag and the sequence number, then filler. */
export function makeRequest(tag: number, seq: number): Buffer {
  const b = Buffer.alloc(RR_SIZE, 0x2e);
  b[0] = 0x52;
  b.writeUInt32BE(tag >>> 0, 4);
  b.writeUInt32BE(seq >>> 0, 8);
  return b;
}
