/**
 * `muxwire server`: accepts clients over TCP or TLS, authenticates each on its control channel, opens the
 * -R listeners it asks for (when --allow-remote admits them), and connects its -L channels to targets that
 * --allow admits. Nothing is forwarded before authentication, and everything is denied unless allowed.
 * @module
 */
import { stat } from 'node:fs/promises';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Channel, type LogRecord, Session, type SessionOptions } from '../index.js';
import { type ServerConfig, allowed, formatAddress } from './args.js';
import { AUTH_FAILURE_DELAY_MS, loadToken, readableByOthers, tokensMatch } from './auth.js';
import { coalescingTransport } from './coalesce.js';
import { TunnelError, describeSocketError } from './errors.js';
import { HandshakeSlots } from './handshake-slots.js';
import {
  type Decision,
  type ForwardContext,
  ForwardedSockets,
  answer,
  boundPort,
  carry,
  listenForward,
} from './forwards.js';
import {
  type ConnectRequest,
  type ForwardResult,
  type AnnouncedForward,
  type ListenRequest,
  HELLO_TIMEOUT_MS,
  type Hello,
  PROTOCOL_VERSION,
  type RemoteRequest,
  TUNNEL_SESSION_OPTIONS,
  encode,
  expectMessage,
} from './protocol.js';
import { RepeatedEvents, RepeatedReport } from './repeats.js';
import { type Reporter, Traffic, reportStopped } from './status.js';
import { type HandshakeOver, listenTunnel } from './transport.js';

/** A running server. */
export interface RunningServer {
  port: number;
  /** Shuts down gracefully (Go Away, drain with a timeout); what the drain leaves unfinished is reset. */
  stop(): Promise<void>;
  /** Resets every forwarded connection not finished, at once (before a forced exit). */
  abort(): void;
}

/** How soon a client's -R port that failed to bind may be tried again (its `listen` requests meanwhile get that answer). */
const RELISTEN_MIN_INTERVAL_MS = 1000;

/** Closes a client's -R listeners (connections they took go on). */
function closeListeners(state: ClientState): void {
  for (const listener of state.listeners.values()) listener.close();
  state.listeners.clear();
}

interface ClientState {
  session: Session;
  remote: string;
  /** The -R listeners, by their forward's index in the client's hello. */
  listeners: Map<number, net.Server>;
  /** The -R forwards whose listener is being opened. */
  opening: Set<number>;
  /** The last failed bind of each -R forward: when, and the answer it gave. */
  failedBinds: Map<number, { at: number; result: ForwardResult }>;
  /** The client sent Go Away: its -R listeners are closed, and none opens any more. */
  goneAway: boolean;
  /** The control channel, once authenticated: ended on shutdown so that the session can drain and close. */
  control?: Channel;
}

/** Starts the server; rejects with a `TunnelError` when the token cannot be read or the port cannot be bound. */
export async function runServer(
  config: ServerConfig,
  env: Record<string, string | undefined>,
  reporter: Reporter,
): Promise<RunningServer> {
  const token = await loadToken(config.token, env, (message) =>
    reporter.event('token-readable', message, { path: config.token.kind === 'file' ? config.token.path : undefined }),
  );
  if (config.tls !== undefined) {
    const keyFile = config.tls.keyFile;
    // A file that cannot be read is refused with its reason when the listener reads it (ERR_TUNNEL_TLS).
    const mode = await stat(keyFile).then(
      (facts) => facts.mode,
      () => 0,
    );
    const readable = readableByOthers(mode, `TLS key file ${keyFile}`, keyFile, 'pose as this server');
    if (readable !== undefined) reporter.event('key-readable', readable, { path: keyFile });
  }
  const traffic = new Traffic();
  const context: ForwardContext = {
    reporter,
    perChannel: new RepeatedEvents(reporter),
    traffic,
    sockets: new ForwardedSockets(),
  };
  const clients = new Set<ClientState>();
  let stopping = false;
  const slots = new HandshakeSlots();

  const refused = (remote: string, why: string, timedOut = false): void =>
    reporter.event('handshake-failed', `client ${remote} ${timedOut ? 'closed' : 'refused'}: ${why}`, {
      remote,
      code: timedOut ? 'ERR_TUNNEL_TIMEOUT' : 'ERR_TUNNEL_BUSY',
    });
  const onConnection = (transport: Duplex, remote: string, handshakeOver: HandshakeOver): void => {
    if (stopping) {
      transport.destroy();
      return;
    }
    const full = slots.take(remote);
    if (full !== undefined) {
      refused(remote, full);
      transport.destroy();
      return;
    }
    const refusals = new RepeatedReport((count, first) => {
      const limit = config.maxChannels;
      reporter.event(
        'channels-refused',
        first
          ? `client ${remote} has ${limit} forwarded connections open (--max-channels ${limit}): its next ones are refused`
          : `client ${remote}: ${count} more forwarded connection(s) refused at --max-channels ${limit}`,
        { remote, count, limit },
      );
    });
    const session = new Session(
      coalescingTransport(transport),
      'server',
      clientSessionOptions(config.maxChannels, refusals),
    );
    const state: ClientState = {
      session,
      remote,
      listeners: new Map(),
      opening: new Set(),
      failedBinds: new Map(),
      goneAway: false,
    };
    clients.add(state);
    // The client's Go Away (it stops, or moves to a new session): its -R ports are free for the next one at
    // once, and a connection to them is refused rather than taken and reset while the old session drains.
    session.once('goaway', () => {
      state.goneAway = true;
      closeListeners(state);
    });
    session.once('close', (error?: Error) => {
      clients.delete(state);
      refusals.flush();
      closeListeners(state);
      // Before authentication the handshake's own failure report says what happened.
      if (state.control !== undefined) {
        reporter.event(
          'client-down',
          `client ${remote} disconnected${error === undefined ? '' : ` (${error.message})`}`,
          { remote },
        );
      }
    });
    handshake(state)
      .catch((error: unknown) => {
        reporter.event('handshake-failed', `client ${remote}: ${(error as TunnelError).message}`, {
          remote,
          code: (error as TunnelError).code,
        });
        session.destroy();
      })
      .finally(() => {
        slots.give(remote);
        handshakeOver();
      });
  };

  /** Authenticates the client, answers its forwards, then serves its channels. */
  async function handshake(state: ClientState): Promise<void> {
    const { session, remote } = state;
    // A client opens nothing but its control channel before the welcome. A connection that opens another is
    // no client of ours and is dropped at once: resetting each such channel instead let a connection that had
    // not authenticated, and did not read the resets, make the server hold hundreds of MiB until the hello's
    // deadline (each reset waits with its channel until it can be written). The first channel goes to the
    // accept() below, registered in this same turn.
    let dropEarly!: (error: TunnelError) => void;
    const droppedEarly = new Promise<never>((_resolve, reject) => (dropEarly = reject));
    droppedEarly.catch(() => {}); // (raced below; never settled for a well-behaved client)
    const refuse = (channel: Channel): void => {
      channel.resetAndDestroy();
      session.destroy(); // (also while a wrong token's answer waits out its delay)
      dropEarly(
        new TunnelError(
          'ERR_TUNNEL_PROTOCOL',
          `opened channel ${channel.id} before the welcome (a tunnel client opens only its control channel first); connection dropped`,
        ),
      );
    };
    session.on('channel', refuse);
    // One deadline for the control channel and the hello on it: a client cannot stretch it by opening the
    // channel late and then staying silent.
    const deadline = performance.now() + HELLO_TIMEOUT_MS;
    const accepted = session.accept({ signal: AbortSignal.timeout(HELLO_TIMEOUT_MS) }).catch(() => {
      if (session.state === 'open')
        throw new TunnelError('ERR_TUNNEL_TIMEOUT', `no control channel within ${HELLO_TIMEOUT_MS / 1000} s`);
      throw new TunnelError(
        'ERR_TUNNEL_PROTOCOL',
        `the connection ended before the handshake (${session.closeError?.message ?? 'closed'}; ${mismatchHint})`,
      );
    });
    const control = await Promise.race([accepted, droppedEarly]);
    control.on('error', () => {});
    const hello = await Promise.race([
      expectMessage(control, Math.max(1, deadline - performance.now()), 'hello'),
      droppedEarly,
    ]);
    // Nothing more is read from the control channel (only its end is seen): what else comes on it is dropped as it
    // comes. Left unread, a client with a wrong token filled the channel's window in one-byte frames while its
    // refusal waited out its delay, each a chunk held: 50 MB of the server's heap a connection.
    control.resume();
    if (!tokensMatch(hello.token, token)) {
      reporter.event(
        'auth-failed',
        `client ${remote} presented a wrong token; refused after ${AUTH_FAILURE_DELAY_MS} ms`,
        { remote },
      );
      await sleep(AUTH_FAILURE_DELAY_MS);
      control.end(encode({ type: 'error', code: 'ERR_TUNNEL_AUTH', message: 'the server refused the token' }));
      await session.close({ timeout: 1000 }).catch(() => {});
      return;
    }
    if (hello.version !== PROTOCOL_VERSION) {
      control.end(
        encode({
          type: 'error',
          code: 'ERR_TUNNEL_PROTOCOL',
          message: `protocol version ${hello.version} is not supported (this server speaks ${PROTOCOL_VERSION})`,
        }),
      );
      await session.close({ timeout: 1000 }).catch(() => {});
      throw new TunnelError('ERR_TUNNEL_PROTOCOL', `protocol version ${hello.version} is not supported`);
    }
    const results = await Promise.race([answerForwards(state, hello), droppedEarly]);
    if (session.state !== 'open') return;
    control.write(welcomeMessage(results));
    // Either end closing the control channel (the client stopping, or this server) closes it both ways.
    if (control.readableEnded) control.end();
    else control.on('end', () => control.end());
    state.control = control;
    if (stopping) control.end();
    reporter.event('client-up', `client ${remote} authenticated; ${describeResults(hello, results)}`, {
      remote,
      forwards: hello.forwards,
      results,
    });
    const decide = (request: ConnectRequest | RemoteRequest): Decision => {
      const { host, port } = request as ConnectRequest;
      if (!allowed(config.allow, host, port)) {
        return new TunnelError(
          'ERR_TUNNEL_DENIED',
          `client ${remote} asked for ${formatAddress(host, port)}, which no --allow admits`,
        );
      }
      return { host, port };
    };
    session.off('channel', refuse);
    // A client whose welcome refused an -R port as in use asks for it again on a channel of its own.
    const listen = async (request: ListenRequest): Promise<ForwardResult> => {
      const forward = hello.forwards[request.index];
      if (forward?.kind !== 'R') {
        return {
          ok: false,
          code: 'ERR_TUNNEL_PROTOCOL',
          message: `control protocol: forward ${request.index} is not an -R forward of this client`,
        };
      }
      return (
        (await openRemote(state, request.index, forward)) ?? {
          ok: false,
          code: 'ERR_TUNNEL_LISTEN',
          message: `-R ${formatAddress(forward.bind, forward.port)}: the session is ending`,
        }
      );
    };
    session.on('channel', (channel) => {
      void answer(channel, 'connect', decide, context, listen);
    });
  }

  /** Checks -L targets against --allow, and opens -R listeners that --allow-remote admits. */
  async function answerForwards(state: ClientState, hello: Hello): Promise<ForwardResult[]> {
    const results: ForwardResult[] = [];
    for (const [index, forward] of hello.forwards.entries()) {
      if (forward.kind === 'L') {
        results.push(
          allowed(config.allow, forward.host, forward.port)
            ? { ok: true }
            : denied(
                `-L target ${formatAddress(forward.host, forward.port)} is not allowed by the server (no --allow admits it)`,
              ),
        );
        continue;
      }
      const result = await openRemote(state, index, forward);
      if (result === undefined) break;
      results.push(result);
    }
    return results;
  }

  /**
   * Opens the listener of the client's -R forward `index`, if --allow-remote admits it (one already open
   * answers with its port); undefined when the session ended or the client went away meanwhile.
   */
  async function openRemote(
    state: ClientState,
    index: number,
    forward: Extract<AnnouncedForward, { kind: 'R' }>,
  ): Promise<ForwardResult | undefined> {
    if (state.goneAway) {
      return {
        ok: false,
        code: 'ERR_TUNNEL_LISTEN',
        message: `-R ${formatAddress(forward.bind, forward.port)}: the client sent Go Away`,
      };
    }
    if (!allowed(config.allowRemote, forward.bind, forward.port)) {
      return denied(
        `-R bind ${formatAddress(forward.bind, forward.port)} is not allowed by the server (no --allow-remote admits it)`,
      );
    }
    const open = state.listeners.get(index);
    if (open !== undefined) return { ok: true, port: boundPort(open) };
    const label = `-R ${formatAddress(forward.bind, forward.port)} of ${state.remote}`;
    if (state.opening.has(index)) {
      return { ok: false, code: 'ERR_TUNNEL_LISTEN', message: `${label}: its listener is being opened` };
    }
    // A failed bind is not tried again (nor logged again) for a second: a client asking in a loop costs little.
    const failed = state.failedBinds.get(index);
    if (failed !== undefined && performance.now() - failed.at < RELISTEN_MIN_INTERVAL_MS) return failed.result;
    state.opening.add(index);
    try {
      const listener = await listenForward(forward.bind, forward.port, label, (socket) => {
        void carry(socket, state.session, { type: 'remote', index }, label, context);
      });
      if (state.session.state !== 'open' || state.goneAway) {
        listener.close();
        return undefined;
      }
      state.listeners.set(index, listener);
      return { ok: true, port: boundPort(listener) };
    } catch (error) {
      const e = error as TunnelError;
      reporter.event('listen-failed', e.message, {
        code: e.code,
        remote: state.remote,
        forward: label,
        bind: forward.bind,
        port: forward.port,
      });
      const result: ForwardResult = { ok: false, code: e.code, message: e.message };
      state.failedBinds.set(index, { at: performance.now(), result });
      return result;
    } finally {
      state.opening.delete(index);
    }
  }

  function denied(message: string): ForwardResult {
    return { ok: false, code: 'ERR_TUNNEL_DENIED', message };
  }

  const mismatchHint =
    config.wsPath !== undefined
      ? 'a WebSocket client that is not a muxwire tunnel client?'
      : config.tls !== undefined
        ? 'a client speaking WebSocket (wss://) to a server without --ws?'
        : 'a client speaking TLS or WebSocket to a plain TCP server?';
  let listenerFailure: NodeJS.ErrnoException | undefined;
  const acceptFailures = new RepeatedReport((count, first) => {
    const why = describeSocketError(listenerFailure);
    reporter.event(
      'accept-failed',
      first ? `could not accept a connection: ${why}` : `${count} more connection(s) could not be accepted: ${why}`,
      { count, code: listenerFailure?.code },
    );
  });
  const server = await listenTunnel(config, onConnection, {
    tlsFailed(error, remote) {
      reporter.event('tls-failed', `TLS handshake with ${remote} failed: ${error.message}`, { remote });
    },
    refused,
    acceptFailed(error) {
      listenerFailure = error;
      acceptFailures.add();
    },
  });
  const port = boundPort(server);
  const kind =
    config.wsPath === undefined
      ? config.tls === undefined
        ? ''
        : ' (TLS)'
      : ` (WebSocket${config.tls === undefined ? '' : ' over TLS'} on ${config.wsPath})`;
  reporter.event('listening', `listening on ${formatAddress(config.listen.host, port)}${kind}`, {
    host: config.listen.host,
    port,
    tls: config.tls !== undefined,
    ws: config.wsPath,
  });
  reporter.startStatus(
    () => ({ up: clients.size > 0, rtt: meanRtt(clients), channels: countChannels(clients), reconnects: 0 }),
    traffic,
  );

  return {
    port,
    async stop(): Promise<void> {
      if (stopping) return;
      stopping = true;
      server.close();
      reporter.event(
        'stopping',
        `stopping: Go Away sent to ${clients.size} client(s), open connections get ${config.drainTimeout} ms to finish`,
        { clients: clients.size },
      );
      context.sockets.stopping();
      await Promise.all(
        [...clients].map(async (state) => {
          const { session, control } = state;
          closeListeners(state);
          control?.end();
          await session.close({ timeout: config.drainTimeout }).catch(() => {});
        }),
      );
      context.perChannel.flush();
      reportStopped(reporter, context.sockets.resetUnfinished());
    },
    abort(): void {
      context.sockets.resetUnfinished();
    },
  };
}

/**
 * The session options of one client's connection: the tunnel's, with at most `maxChannels` forwarded
 * connections open at once and the control channel (a channel beyond it is refused with RST, and an -R
 * connection finds no channel), and refusals at that bound counted in `refusals`.
 */
function clientSessionOptions(maxChannels: number, refusals: RepeatedReport): SessionOptions {
  return {
    ...TUNNEL_SESSION_OPTIONS,
    maxStreams: maxChannels + 1,
    logger: (record: LogRecord) => {
      if (record.event === 'channel-refused' && record.direction === 'out' && record.reason === 'max-streams')
        refusals.add();
    },
  };
}

function countChannels(clients: Set<ClientState>): number {
  let count = 0;
  for (const { session } of clients) count += session.channelCount;
  return count;
}

/** The clients' round-trip times averaged, for the status line (undefined before any was measured). */
function meanRtt(clients: Set<ClientState>): number | undefined {
  let sum = 0;
  let count = 0;
  for (const { session } of clients) {
    if (session.rtt === undefined) continue;
    sum += session.rtt;
    count += 1;
  }
  return count === 0 ? undefined : sum / count;
}

function describeResults(hello: Hello, results: ForwardResult[]): string {
  if (hello.forwards.length === 0) return 'no forwards';
  return hello.forwards
    .map((forward, i) => {
      const result = results[i];
      const what =
        forward.kind === 'L'
          ? `-L to ${formatAddress(forward.host, forward.port)}`
          : `-R on ${formatAddress(forward.bind, result?.ok === true ? (result.port ?? forward.port) : forward.port)}`;
      return `${what} ${result?.ok === true ? 'ok' : 'refused'}`;
    })
    .join(', ');
}

/**
 * The welcome with `results`. Each refusal's message is up to a few hundred bytes, so past about 50 refusals
 * the welcome would outgrow the control protocol's 16 KiB: then the refusals carry their codes alone (the
 * client words them from its own forwards, and this server's log has each message).
 */
function welcomeMessage(results: ForwardResult[]): Buffer {
  const welcome = { type: 'welcome', version: PROTOCOL_VERSION, results, listen: true } as const;
  try {
    return encode(welcome);
  } catch {
    return encode({
      ...welcome,
      results: results.map((result): ForwardResult => (result.ok ? result : { ...result, message: '' })),
    });
  }
}
