// The contract between the harness and one multiplexer ("implementation") under test.
//
// A channel is a Node Duplex of bytes (anything with write/end/destroy and 'data'/'end'/'error'/'drain'
// events, e.g. a net.Socket, an Http2Stream, a readable-stream v2 Duplex):
//   write(chunk) sends bytes, end() half-closes (no more bytes from this side), destroy() aborts,
//   'end' means the peer half-closed.
// The harness owns the TCP listener and dialer; it calls setNoDelay(true) on every socket it hands over.
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';

export type Channel = Duplex;

/** What the workload needs from the implementation (same values on both sides). */
export interface AdapterOptions {
  /** Most channels the workload keeps open at once on one session (idle: 100,000). */
  maxChannels: number;
}

/** Ways for an adapter to report trouble that is not tied to one channel (framing errors, go-away...). */
export interface AdapterHooks {
  onError(this: void, err: Error): void;
}

/** Dials the server (or the long-fat proxy) over loopback TCP. */
export interface Dialer {
  /** A new socket, already connecting (writes are buffered until connected). */
  dial(): Socket;
  /** A new socket, resolved once connected. */
  connect(): Promise<Socket>;
}

export interface ServerSession {
  /** Graceful close of this transport connection's session. */
  close(): Promise<void>;
}

export interface ClientSession {
  /** Opens a new channel; synchronous, bytes written before the peer accepts are queued. */
  open(): Channel;
  /** Graceful close of the client side. */
  close(): Promise<void>;
}

export interface Implementation {
  /** Short id used on the command line and in tables. */
  name: string;
  /** Package and version or 'node:...' builtin, for the report. */
  describe: string;
  /**
   * 'shared': every channel rides one transport connection (a multiplexer).
   * 'per-channel': every channel is its own transport connection (raw TCP).
   */
  transport: 'shared' | 'per-channel';
  /** Heap bytes per channel of harness glue (e.g. a Duplex wrapper) included in the idle figures. */
  glueBytesPerChannel?: number;
  /**
   * Resolves once the adapter has loaded what its sessions need (a library it imports in the background). The
   * server waits for it before it listens, so that loading never runs inside a client's measured part. It
   * never rejects: a load failure is reported as the sessions are made.
   */
  ready?(): Promise<void>;
  /** Called for every accepted TCP connection; announce each inbound channel with onChannel. */
  server(socket: Socket, onChannel: (ch: Channel) => void, opts: AdapterOptions, hooks: AdapterHooks): ServerSession;
  /** Called once per client process. */
  client(dialer: Dialer, opts: AdapterOptions, hooks: AdapterHooks): Promise<ClientSession>;
}

/** Thrown (or rejected) by an adapter's module loader when the implementation cannot run here. */
export class ImplementationUnavailable extends Error {
  override name = 'ImplementationUnavailable';
}
