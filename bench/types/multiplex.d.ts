// multiplex 6.7.0 (max-mapper) ships no types: the parts the adapter uses.
declare module 'multiplex' {
  import type { Duplex } from 'node:stream';
  interface MultiplexOptions {
    /** keep a channel's writable side open after the peer ended (real half-close) */
    halfOpen?: boolean;
    /** largest accepted message, 0 = no limit */
    limit?: number;
    chunked?: boolean;
    lazy?: boolean;
    binaryName?: boolean;
  }
  interface Multiplex extends Duplex {
    createStream(name?: string | Buffer, opts?: MultiplexOptions): Duplex;
    receiveStream(name: string | Buffer, opts?: MultiplexOptions): Duplex;
  }
  function multiplex(opts?: MultiplexOptions, onStream?: (stream: Duplex, id: string) => void): Multiplex;
  function multiplex(onStream?: (stream: Duplex, id: string) => void): Multiplex;
  export default multiplex;
}
