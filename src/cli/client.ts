/**
 * `muxwire client`: opens the -L listeners, connects to the server (TCP or TLS), authenticates and announces
 * its forwards on the control channel, carries each -L connection over a channel and answers the server's
 * -R channels; reconnects when the session is lost, keeping the -L listeners up meanwhile.
 * @module
 */
import type net from 'node:net';
import { type Channel, Session } from '../index.js';
import { type ClientConfig, type ForwardSpec, TOKEN_ENV, formatAddress } from './args.js';
import { loadToken } from './auth.js';
import { coalescingTransport } from './coalesce.js';
import { FATAL_CODES, TunnelError, type TunnelErrorCode } from './errors.js';
import {
  ANSWER_TIMEOUT_MS,
  type Decision,
  type ForwardContext,
  ForwardedSockets,
  answer,
  boundPort,
  carry,
  listenForward,
} from './forwards.js';
import {
  type AnnouncedForward,
  type ConnectRequest,
  HELLO_TIMEOUT_MS,
  MAX_MESSAGE_BYTES,
  PROTOCOL_VERSION,
  type RemoteRequest,
  TUNNEL_SESSION_OPTIONS,
  encode,
  expectMessage,
} from './protocol.js';
import { Reconnector, STABLE_SESSION_MS } from './reconnect.js';
import { RepeatedEvents } from './repeats.js';
import { type Reporter, Traffic, reportStopped } from './status.js';
import { clientTlsOptions, dialServer } from './transport.js';

/**
 * After a reconnect, the first wait before a new handshake asks again for a -R port refused as in use; it
 * doubles each time, up to `--reconnect-max`.
 */
const RELISTEN_FIRST_DELAY_MS = 2000;

/** How long a session whose forwards the server refused at the first handshake may take to close gracefully. */
const REFUSED_CLOSE_TIMEOUT_MS = 1000;
/**
 * How long a session the server sent Go Away on may drain at most, when this side's own `--drain-timeout` is
 * shorter: the server's drain (its `--drain-timeout`) is the one that holds, and it ends the session itself; this
 * bound is for a server that never does (old sessions would pile up, one a Go Away). A session's own default.
 */
const GO_AWAY_DRAIN_MAX_MS = 30_000;

/** A running client. `done` settles when it stops by itself (a fatal error, retries exhausted). */
export interface RunningClient {
  /** The port each -L listens on, in the order given (the OS's pick where the spec said 0). */
  localPorts: number[];
  /** Rejects with the error that stopped the client; resolves after `stop()`. */
  done: Promise<void>;
  /** Shuts down gracefully: what the drain leaves unfinished is reset. */
  stop(): Promise<void>;
  /** Resets every forwarded connection not finished, at once (before a forced exit). */
  abort(): void;
}

/** Starts the client: rejects at once when the token or a -L port cannot be had. */
export async function runClient(
  config: ClientConfig,
  env: Record<string, string | undefined>,
  reporter: Reporter,
): Promise<RunningClient> {
  const token = await loadToken(config.token, env, (message) =>
    reporter.event('token-readable', message, { path: config.token.kind === 'file' ? config.token.path : undefined }),
  );
  const tlsOptions = clientTlsOptions(config);
  const traffic = new Traffic();
  const context: ForwardContext = {
    reporter,
    perChannel: new RepeatedEvents(reporter),
    traffic,
    sockets: new ForwardedSockets(),
  };
  const locals = config.forwards.filter((f) => f.kind === 'L');
  const remotes = config.forwards.filter((f) => f.kind === 'R');
  const announced: AnnouncedForward[] = [
    ...locals.map((f): AnnouncedForward => ({ kind: 'L', host: f.host, port: f.hostPort })),
    ...remotes.map((f): AnnouncedForward => ({ kind: 'R', bind: f.bind, port: f.port })),
  ];
  // Said now rather than as a handshake the server drops, which reads like a --tls or --ws mismatch.
  const helloBytes = Buffer.byteLength(
    JSON.stringify({ type: 'hello', version: PROTOCOL_VERSION, token, forwards: announced }),
  );
  if (helloBytes > MAX_MESSAGE_BYTES) {
    throw new TunnelError(
      'ERR_TUNNEL_PROTOCOL',
      `the forwards take ${helloBytes} bytes in the handshake, more than its ${MAX_MESSAGE_BYTES}: give fewer -L/-R or shorter host names`,
    );
  }
  const server = config.ws?.href ?? formatAddress(config.server.host, config.server.port);
  const controls = new WeakMap<Session, Channel>();
  /** Every session not yet closed: the current one and those draining after a Go Away. */
  const sessions = new Set<Session>();
  let everUp = false;
  /** Handshakes in a row that found a -R port in use (see `establish`). */
  let relistenAttempts = 0;

  /** Connects, authenticates, announces the forwards and checks the server's answers. */
  async function establish(): Promise<Session> {
    const socket = await dialServer(config.server, tlsOptions, config.tls?.fingerprint, config.ws, config.proxy);
    const session = new Session(coalescingTransport(socket), 'client', TUNNEL_SESSION_OPTIONS);
    const control = session.dial();
    /** Set once the server answered the hello: a failure after it closes the session gracefully. */
    let welcomed = false;
    try {
      control.on('error', () => {});
      control.write(encode({ type: 'hello', version: PROTOCOL_VERSION, token, forwards: announced }));
      const welcome = await expectMessage(control, HELLO_TIMEOUT_MS, 'welcome').catch((error: unknown) => {
        throw handshakeError(error, session);
      });
      welcomed = true;
      const failed: { error: TunnelError; spec: ForwardSpec }[] = [];
      for (const [index, result] of welcome.results.entries()) {
        const spec = index < locals.length ? locals[index]! : remotes[index - locals.length];
        if (spec === undefined) continue;
        if (!result.ok) {
          // (A welcome too large with every refusal's message carries their codes alone: see the server.)
          const why = result.message === '' ? refusedWithoutMessage(result.code) : result.message;
          failed.push({ error: new TunnelError(result.code, `-${spec.kind} ${spec.text}: ${why}`), spec });
        } else if (spec.kind === 'R') {
          reportListening(spec, result.port);
        }
      }
      // Before the first session a refused forward is a mistake in the command line or the server's
      // allow-lists: stop and say so. After it, keep what works (a refused -R bind may be held by the
      // server's record of the previous session for a moment) and report the rest.
      if (failed.length > 0 && !everUp) throw failed[0]!.error;
      // A fixed -R port refused as in use after a reconnect is most often still held by the server's record of
      // the session that was lost (a connection cut on this side only): it is freed once the server notices,
      // within its keep-alive timeout. So it is asked for again, after a backoff: on this session when the
      // server answers such requests (nothing else is disturbed), else by a new handshake.
      const inUse = failed.map(({ error, spec }) => spec.kind === 'R' && error.code === 'ERR_TUNNEL_LISTEN');
      const relisten = inUse.includes(true);
      const delay = Math.min(RELISTEN_FIRST_DELAY_MS * 2 ** relistenAttempts, config.reconnectMax);
      relistenAttempts = relisten && welcome.listen !== true ? relistenAttempts + 1 : 0;
      for (const [i, { error, spec }] of failed.entries()) {
        const again = inUse[i];
        reporter.event(
          'forward-refused',
          `${error.message}${again ? `; asking again in ${(delay / 1000).toFixed(1)} s` : ''}`,
          { code: error.code, forward: `-${spec.kind} ${spec.text}` },
        );
      }
      if (relisten && welcome.listen === true) {
        for (const [i, { spec }] of failed.entries()) if (inUse[i]) listenAgain(session, spec, delay);
      } else if (relisten) {
        const timer = setTimeout(
          () => reconnector.renew(session, 'asking the server again for a -R port it refused as in use'),
          delay,
        );
        session.once('close', () => clearTimeout(timer));
      }
      control.on('end', () => control.end());
      control.resume(); // nothing more is read from it, but its end must be seen
      controls.set(session, control);
      sessions.add(session);
      session.once('close', () => sessions.delete(session));
      session.on('channel', (channel) => {
        void answer(channel, 'remote', decideRemote, context);
      });
      return session;
    } catch (error) {
      if (welcomed && session.state === 'open') {
        // A refusal in the welcome: the server is fine, so leave as a client that is done, not one that broke.
        control.end();
        await session.close({ timeout: REFUSED_CLOSE_TIMEOUT_MS }).catch(() => {});
      } else {
        session.destroy();
      }
      throw error;
    }
  }

  function reportListening(spec: ForwardSpec, port: number | undefined): void {
    reporter.event(
      'remote-listening',
      `-R ${spec.text}: the server listens on ${formatAddress(spec.bind, port ?? spec.port)}`,
      { forward: spec.text, bind: spec.bind, port: port ?? spec.port, host: spec.host, hostPort: spec.hostPort },
    );
  }

  /**
   * Asks the server again, on `session`, for the -R forward `spec` that it refused as in use, after `delayMs`;
   * refused as in use again, after twice that (up to `--reconnect-max`), for as long as the session lasts (a
   * new session's handshake asks for every forward anyway).
   */
  function listenAgain(session: Session, spec: ForwardSpec, delayMs: number): void {
    const timer = setTimeout(() => {
      session.off('close', cancel);
      void (async () => {
        let channel: Channel;
        try {
          channel = session.dial();
        } catch {
          return; // the session is ending: the next one asks for the forward in its handshake
        }
        channel.on('error', () => {});
        channel.end(encode({ type: 'listen', index: locals.length + remotes.indexOf(spec) }));
        try {
          const answer = await expectMessage(channel, ANSWER_TIMEOUT_MS, 'ok');
          channel.resume(); // its end must be seen for the channel to close
          reportListening(spec, answer.port);
        } catch (error) {
          channel.resetAndDestroy();
          if (session.state !== 'open') return;
          const e = error as TunnelError;
          const again = e.code === 'ERR_TUNNEL_LISTEN';
          const next = Math.min(delayMs * 2, config.reconnectMax);
          reporter.event(
            'forward-refused',
            `-R ${spec.text}: ${e.message}${again ? `; asking again in ${(next / 1000).toFixed(1)} s` : ''}`,
            { code: e.code, forward: `-R ${spec.text}` },
          );
          if (again) listenAgain(session, spec, next);
        }
      })();
    }, delayMs);
    const cancel = (): void => clearTimeout(timer);
    session.once('close', cancel);
  }

  /**
   * What a failure before the welcome tells the user. The session's own errors (a keep-alive ping unanswered,
   * bytes that are not yamux) are not theirs to act on: what they can check is the server and how it listens.
   */
  function handshakeError(error: unknown, session: Session): Error {
    const code = (error as TunnelError).code;
    if (code === 'ERR_TUNNEL_AUTH') {
      return new TunnelError(
        'ERR_TUNNEL_AUTH',
        `the server ${server} refused the token (check --token-file or ${TOKEN_ENV})`,
      );
    }
    const hint = 'check that --tls and --ws match how it listens, and that it is a muxwire server';
    const sessionCode = (session.closeError as { code?: string } | undefined)?.code;
    if (code === 'ERR_TUNNEL_TIMEOUT' || sessionCode === 'ERR_MUX_KEEPALIVE_TIMEOUT') {
      return new TunnelError(
        'ERR_TUNNEL_TIMEOUT',
        `the server ${server} did not complete the handshake: no answer within ${HELLO_TIMEOUT_MS / 1000} s (${hint}; or it is stopped or overloaded: a server that answered before and stops answering says nothing)`,
        { cause: error },
      );
    }
    if (sessionCode === 'ERR_MUX_PROTOCOL') {
      return new TunnelError(
        'ERR_TUNNEL_UNREACHABLE',
        `the server ${server} did not answer in muxwire's protocol (${hint})`,
        { cause: error },
      );
    }
    // The session failing otherwise (a transport error) or the connection closing before the welcome: most
    // often a server that speaks TLS or WebSocket to a client that does not.
    if (!(error instanceof TunnelError) || (code === 'ERR_TUNNEL_PROTOCOL' && session.state !== 'open')) {
      return new TunnelError(
        'ERR_TUNNEL_UNREACHABLE',
        `the server ${server} closed the connection during the handshake (${hint}; or it was busy with other handshakes, as its log would say)`,
        { cause: error },
      );
    }
    return error;
  }

  const decideRemote = (request: ConnectRequest | RemoteRequest): Decision => {
    // The index counts the forwards as announced in hello: the -L ones first, then the -R ones.
    const { index } = request as RemoteRequest;
    const spec = index >= locals.length ? remotes[index - locals.length] : undefined;
    if (spec === undefined)
      return new TunnelError('ERR_TUNNEL_PROTOCOL', `the server asked for unknown -R number ${index}`);
    return { host: spec.host, port: spec.hostPort };
  };

  let settle!: { resolve(): void; reject(error: Error): void };
  const done = new Promise<void>((resolve, reject) => {
    settle = { resolve, reject };
  });

  const reconnector = new Reconnector({
    establish,
    isFatal: (error) =>
      error instanceof TunnelError &&
      FATAL_CODES.has(error.code) &&
      (!everUp || error.code === 'ERR_TUNNEL_AUTH' || error.code === 'ERR_TUNNEL_CERT'),
    maxDelay: config.reconnectMax,
    retries: config.retries,
    hooks: {
      up(session, reconnects) {
        everUp = true;
        reporter.event(
          'session-up',
          `connected to ${server}${config.tls === undefined ? '' : ' (TLS)'}${reconnects > 0 ? ` (reconnect ${reconnects})` : ''}`,
          { server, reconnects },
        );
      },
      down(session, reason, delayMs, renewed) {
        reporter.event(
          'session-down',
          `lost the session with ${server}: ${reason}; ${
            delayMs === 0
              ? 'reconnecting'
              : `it lasted less than ${STABLE_SESSION_MS / 1000} s: reconnecting in ${(delayMs / 1000).toFixed(1)} s`
          }`,
          { server, reason, delayMs },
        );
        // A Go Away leaves the session open for the channels in flight: let them finish, then end it. The
        // server's Go Away comes with its own drain (its --drain-timeout), at whose end it closes the session:
        // that deadline is the one that holds, not this side's (which is for this side's own stop, and still
        // applies if it stops meanwhile), up to GO_AWAY_DRAIN_MAX_MS. Moving on by this side's own choice (a
        // renewal) drains by this side's deadline.
        controls.get(session)?.end();
        const timeout = renewed ? config.drainTimeout : Math.max(config.drainTimeout, GO_AWAY_DRAIN_MAX_MS);
        void session.close({ timeout }).catch(() => {});
      },
      retry(error, delayMs, failures, waiting) {
        reporter.event(
          'retry',
          `${error.message}; retrying in ${(delayMs / 1000).toFixed(1)} s (attempt ${failures + 1}` +
            `${waiting ? ', a connection is waiting' : ''})`,
          { code: (error as TunnelError).code, delayMs, failures },
        );
      },
      giveUp(error, failures, retriesRanOut) {
        // Say why this failure is the last: the person sees the retries end, not only the last error.
        settle.reject(
          retriesRanOut && error instanceof TunnelError
            ? new TunnelError(
                error.code,
                `${error.message}; giving up after ${failures} failed attempts in a row (--retries ${config.retries})`,
                { cause: error },
              )
            : error,
        );
      },
    },
  });

  const listeners: net.Server[] = [];
  const localPorts: number[] = [];
  try {
    for (const spec of locals) listeners.push(await openLocal(spec));
  } catch (error) {
    for (const listener of listeners) listener.close();
    throw error;
  }

  function openLocal(spec: ForwardSpec): Promise<net.Server> {
    const label = `-L ${spec.text}`;
    const request = { type: 'connect', host: spec.host, port: spec.hostPort } as const;
    return listenForward(spec.bind, spec.port, label, (socket) => {
      socket.on('error', () => {});
      context.sockets.add(socket);
      void reconnector.waitForSession(config.connectWait).then((session) => {
        if (session === undefined) {
          reporter.event(
            'forward-failed',
            reconnector.stopped
              ? `${label}: the client is shutting down before it had a session; connection reset`
              : `${label}: no session with ${server} within ${config.connectWait} ms; connection reset`,
            { forward: label, code: reconnector.stopped ? undefined : 'ERR_TUNNEL_UNREACHABLE' },
          );
          if (!socket.destroyed) socket.resetAndDestroy();
          return;
        }
        if (socket.destroyed) return;
        void carry(socket, session, request, label, context);
      });
    }).then((listener) => {
      localPorts.push(boundPort(listener));
      reporter.event('local-listening', `${label}: listening on ${formatAddress(spec.bind, boundPort(listener))}`, {
        forward: spec.text,
        bind: spec.bind,
        port: boundPort(listener),
        host: spec.host,
        hostPort: spec.hostPort,
      });
      return listener;
    });
  }

  reconnector.start();
  reporter.startStatus(
    () => ({
      up: reconnector.current !== undefined,
      rtt: reconnector.current?.rtt,
      channels: reconnector.current?.channelCount ?? 0,
      reconnects: reconnector.reconnects,
    }),
    traffic,
  );

  let stopping: Promise<void> | undefined;
  return {
    localPorts,
    done,
    stop(): Promise<void> {
      stopping ??= (async () => {
        for (const listener of listeners) listener.close();
        reconnector.stop();
        // The connections waiting for a session heard "none" from stop(): their handlers, queued then, run
        // before this continuation (promise jobs run in order), so their reports come before 'stopped'.
        await Promise.resolve();
        context.sockets.stopping();
        if (sessions.size > 0) {
          reporter.event('stopping', `stopping: open connections get ${config.drainTimeout} ms to finish`);
          await Promise.all(
            [...sessions].map((session) => {
              controls.get(session)?.end();
              return session.close({ timeout: config.drainTimeout }).catch(() => {});
            }),
          );
        }
        context.perChannel.flush();
        reportStopped(reporter, context.sockets.resetUnfinished());
        settle.resolve();
      })();
      return stopping;
    },
    abort(): void {
      context.sockets.resetUnfinished();
    },
  };
}

/**
 * A refusal's words when the welcome carried its code alone (it would have outgrown the control protocol with
 * every message: see the server's `welcomeMessage`).
 */
function refusedWithoutMessage(code: TunnelErrorCode): string {
  if (code === 'ERR_TUNNEL_DENIED') return 'not allowed by the server (no --allow or --allow-remote admits it)';
  if (code === 'ERR_TUNNEL_LISTEN') return 'the server could not listen there';
  return `refused by the server (${code}; its log says why)`;
}
