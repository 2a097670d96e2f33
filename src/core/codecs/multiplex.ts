/**
 * The codec of the original Go package `alecthomas/multiplex` (see docs/multiplex-codec.md).
 *
 * Frame: 4-byte big-endian channel id, 1 flag byte (0x01 SYN, 0x02 RST), 3-byte big-endian payload length,
 * then the payload. There is no window, no half-close, no ping and no Go Away; its RST is a full close.
 *
 * Mapping to the session's yamux terms: every frame decodes as Data; SYN stays SYN; RST becomes FIN, which a
 * codec without half-close treats as "closed both ways". Encoding: SYN goes as its own empty frame before
 * any data (as the original writes it); FIN and RST both go as RST; window increments and ACKs are not
 * expressible and are dropped.
 * @module
 */
import type { WireCodec } from '../codec.js';
import { MultiplexRules } from './multiplex-rules.js';
import { Flag, FrameType } from '../frame.js';

/** Header size of the multiplex format. */
export const MULTIPLEX_HEADER_SIZE = 8;
/** Flag bits of the multiplex format. */
export const MultiplexFlag = { syn: 0x01, rst: 0x02 } as const;
/** The original's fragment size: writes are cut into frames of at most this many bytes. */
export const MULTIPLEX_FRAGMENT = 1024;

function writeHeader(target: Uint8Array, offset: number, id: number, flags: number, length: number): void {
  target[offset] = id >>> 24;
  target[offset + 1] = (id >>> 16) & 0xff;
  target[offset + 2] = (id >>> 8) & 0xff;
  target[offset + 3] = id & 0xff;
  target[offset + 4] = flags;
  target[offset + 5] = (length >>> 16) & 0xff;
  target[offset + 6] = (length >>> 8) & 0xff;
  target[offset + 7] = length & 0xff;
}

/**
 * The original Go package's format (`alecthomas/multiplex`, docs/multiplex-codec.md), for `protocol: 'multiplex'`;
 * a page's `WebSession` needs it passed as the `multiplexCodec` option.
 */
export const multiplexCodec: WireCodec = {
  name: 'multiplex',
  rules: (options, memory, gate, scheduler, writer, relieveMemory) =>
    new MultiplexRules(options, memory, gate, scheduler, writer, relieveMemory),
  capabilities: {
    flowControl: false,
    halfClose: false,
    acknowledgements: false,
    ping: false,
    goAway: false,
    strictOpen: false,
    refusal: false,
  },
  headerSize: MULTIPLEX_HEADER_SIZE,
  maxEncodedHeader: 2 * MULTIPLEX_HEADER_SIZE,
  maxFragment: MULTIPLEX_FRAGMENT,
  // The original adds 2 to a counter before each dial: the server's counter starts at 0, the client's at 1.
  firstId: (role) => (role === 'client' ? 3 : 2),
  decodeHeader(source, offset, out) {
    out.version = 0;
    out.type = FrameType.data;
    out.streamId =
      ((source[offset]! << 24) | (source[offset + 1]! << 16) | (source[offset + 2]! << 8) | source[offset + 3]!) >>> 0;
    const raw = source[offset + 4]!;
    // Unknown bits are kept (above 0xff) so that checkHeader can name them.
    out.flags =
      ((raw & MultiplexFlag.syn) !== 0 ? Flag.syn : 0) |
      ((raw & MultiplexFlag.rst) !== 0 ? Flag.fin : 0) |
      ((raw & ~(MultiplexFlag.syn | MultiplexFlag.rst)) << 8);
    out.length = (source[offset + 5]! << 16) | (source[offset + 6]! << 8) | source[offset + 7]!;
  },
  checkHeader(header) {
    if (header.flags > 0xff) return `unknown multiplex flags 0x${(header.flags >>> 8).toString(16)}`;
    return null;
  },
  payloadLength: (header) => header.length,
  encode(target, offset, type, flags, streamId, length) {
    if (type !== FrameType.data && type !== FrameType.windowUpdate) return 0; // no Ping, no Go Away
    let written = 0;
    const payload = type === FrameType.data ? length : 0;
    if ((flags & Flag.syn) !== 0) {
      writeHeader(target, offset, streamId, MultiplexFlag.syn, 0);
      written += MULTIPLEX_HEADER_SIZE;
    }
    if (payload > 0) {
      writeHeader(target, offset + written, streamId, 0, payload);
      written += MULTIPLEX_HEADER_SIZE;
    } else if ((flags & (Flag.fin | Flag.rst)) !== 0) {
      writeHeader(target, offset + written, streamId, MultiplexFlag.rst, 0);
      written += MULTIPLEX_HEADER_SIZE;
    }
    return written;
  },
};
