// muxwire (this repository), loaded from its build output through the package's own name
// ('muxwire' resolves to dist/src/index.js via package.json "exports"). The specifier is kept in a
// variable so that compiling bench/ never type-checks or compiles src/; run `npm run build` first.
import type { Socket } from 'node:net';
import { ImplementationUnavailable, type Implementation, type Channel, type AdapterOptions } from './types.js';

// The slice of the muxwire API this adapter uses.
interface MuxwireSession {
  dial(): Channel;
  close(): Promise<void>;
  destroy(err?: Error): void;
  on?(event: 'channel', listener: (ch: Channel) => void): unknown;
  on?(event: 'error', listener: (err: Error) => void): unknown;
  accept?(): Promise<Channel | null | undefined>;
  [Symbol.asyncIterator]?(): AsyncIterator<Channel>;
}
interface MuxwireModule {
  multiplexedServer(socket: Socket, options?: Record<string, unknown>): MuxwireSession;
  multiplexedClient(socket: Socket, options?: Record<string, unknown>): MuxwireSession;
  lightServer(socket: Socket, options?: Record<string, unknown>): MuxwireSession;
  lightClient(socket: Socket, options?: Record<string, unknown>): MuxwireSession;
}

const SPECIFIER = 'muxwire';

export async function loadMuxwire(): Promise<MuxwireModule> {
  let mod: Partial<MuxwireModule>;
  try {
    mod = (await import(SPECIFIER)) as Partial<MuxwireModule>;
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'ERR_PACKAGE_PATH_NOT_EXPORTED') {
      throw new ImplementationUnavailable('muxwire not built');
    }
    throw new ImplementationUnavailable(`muxwire not importable: ${(err as Error).message}`);
  }
  if (
    typeof mod.multiplexedServer !== 'function' ||
    typeof mod.multiplexedClient !== 'function' ||
    typeof mod.lightServer !== 'function' ||
    typeof mod.lightClient !== 'function'
  ) {
    throw new ImplementationUnavailable(
      'muxwire not built (no multiplexedServer/multiplexedClient/lightServer/lightClient export)',
    );
  }
  return mod as MuxwireModule;
}

// All option names in one place. A workload that holds many channels at once raises the limits on both
// sides alike: the server takes that many channels before they are accepted (acceptBacklog), so the client may
// have that many waiting for their acknowledgement (ackBacklog; its default of 256 is for peers such as
// hashicorp/yamux, which refuse channels beyond an accept backlog of 256).
// MUXWIRE_BENCH_OPTIONS (JSON) adds session options, for tuning experiments such as maxFrameSize.
const extra = JSON.parse(process.env.MUXWIRE_BENCH_OPTIONS ?? '{}') as Record<string, unknown>;

function options(opts: AdapterOptions): Record<string, unknown> {
  if (opts.maxChannels <= 1000) return { ...extra };
  return { maxStreams: opts.maxChannels * 2, acceptBacklog: opts.maxChannels, ackBacklog: opts.maxChannels, ...extra };
}

function watchErrors(session: MuxwireSession, onError: (err: Error) => void): void {
  if (typeof session.on === 'function') session.on('error', onError);
}

async function acceptLoop(session: MuxwireSession, onChannel: (ch: Channel) => void, onError: (err: Error) => void) {
  try {
    if (typeof session[Symbol.asyncIterator] === 'function') {
      for await (const ch of session as AsyncIterable<Channel>) onChannel(ch);
    } else if (typeof session.accept === 'function') {
      for (;;) {
        const ch = await session.accept();
        if (!ch) break;
        onChannel(ch);
      }
    }
  } catch (err) {
    onError(err as Error);
  }
}

const loaded = loadMuxwire();
loaded.catch(() => {}); // reported when the adapter is used, not at import

/**
 * muxwire with its Node `Channel`s (`multiplexedServer` / `multiplexedClient`), or with `LightChannel`s
 * (`lightServer` / `lightClient`). A `LightChannel` is no `Duplex`, but it has every method and event the
 * workloads use (`write`, `end`, `pause`, `resume`, `destroy`, `destroyed`, 'data', 'end', 'drain', 'error',
 * 'close'), and in Node its data arrives as Buffers.
 */
export function muxwireImplementation(channels: 'node' | 'light'): Implementation {
  const light = channels === 'light';
  return {
    name: light ? 'muxwire-light' : 'muxwire',
    describe: light ? 'muxwire with LightChannels (this repo, dist/src)' : 'muxwire (this repo, dist/src)',
    transport: 'shared',
    ready: () =>
      loaded.then(
        () => {},
        () => {},
      ),
    server(socket, onChannel, opts, hooks) {
      let session: MuxwireSession | undefined;
      loaded.then(
        (mw) => {
          session = light ? mw.lightServer(socket, options(opts)) : mw.multiplexedServer(socket, options(opts));
          watchErrors(session, hooks.onError);
          if (typeof session.on === 'function') session.on('channel', onChannel);
          else void acceptLoop(session, onChannel, hooks.onError);
        },
        (err: unknown) => hooks.onError(err as Error),
      );
      return { close: async () => session?.close() };
    },
    async client(dialer, opts, hooks) {
      const mw = await loaded;
      const socket = await dialer.connect();
      const session = light ? mw.lightClient(socket, options(opts)) : mw.multiplexedClient(socket, options(opts));
      watchErrors(session, hooks.onError);
      return { open: () => session.dial(), close: () => session.close() };
    },
  };
}

export default muxwireImplementation('node');
