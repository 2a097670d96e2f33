/**
 * The yamux codec: the default wire format (see docs/protocol.md).
 * @module
 */
import type { WireCodec } from '../codec.js';
import { FrameType, HEADER_SIZE, PROTOCOL_VERSION, decodeHeader, encodeHeader } from '../frame.js';

/** The yamux wire format (docs/protocol.md): the default `protocol`. */
export const yamuxCodec: WireCodec = {
  name: 'yamux',
  capabilities: {
    flowControl: true,
    halfClose: true,
    acknowledgements: true,
    ping: true,
    goAway: true,
    strictOpen: true,
    refusal: true,
  },
  headerSize: HEADER_SIZE,
  maxEncodedHeader: HEADER_SIZE,
  maxFragment: Infinity,
  firstId: (role) => (role === 'client' ? 1 : 2),
  decodeHeader,
  checkHeader(header) {
    const version = header.version;
    if (version !== PROTOCOL_VERSION) {
      // A printable byte is most likely text from another writer on the stream (a child's console.log).
      const text =
        version > 31 && version < 127
          ? ` (${JSON.stringify(String.fromCharCode(version))}: text, e.g. console.log on it?)`
          : '';
      return `unsupported protocol version ${version}${text}`;
    }
    if (header.type > FrameType.goAway) return `unknown frame type ${header.type}`;
    return null;
  },
  payloadLength: (header) => (header.type === FrameType.data ? header.length : 0),
  encode(target, offset, type, flags, streamId, length) {
    encodeHeader(target, offset, type, flags, streamId, length);
    return HEADER_SIZE;
  },
};
