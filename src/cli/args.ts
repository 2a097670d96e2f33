/**
 * The command line of `muxwire`: subcommands, options (parsed with `node:util`'s `parseArgs`), addresses,
 * `-L`/`-R` forward specs and `--allow` patterns. Everything here is pure: it turns argv into a typed
 * configuration or throws a {@link UsageError} that names what is wrong.
 * @module
 */
import { parseArgs } from 'node:util';
import { INITIAL_DELAY_MS } from './reconnect.js';

/** The most forwards a client announces (the control protocol's `hello` takes no more). */
export const MAX_FORWARDS = 256;

/** A mistake on the command line; the command prints its message and exits with code 2. */
export class UsageError extends Error {
  readonly code = 'ERR_TUNNEL_USAGE';
  override name = 'UsageError';
}

/** A host and a port as written by the user (host without IPv6 brackets). */
export interface Address {
  host: string;
  port: number;
}

/** One `-L` or `-R`: listen on `bind`:`port` (on the client for -L, the server for -R), connect to `host`:`hostPort`. */
export interface ForwardSpec {
  kind: 'L' | 'R';
  bind: string;
  port: number;
  host: string;
  hostPort: number;
  /** The spec as the user wrote it, for messages. */
  text: string;
}

/** An `--allow` / `--allow-remote` pattern: a host and a port, either of which may be `*`. */
export interface AllowPattern {
  host: string; // or '*'
  port: number | '*';
  text: string;
}

/** Where the token comes from: a file, or the `MUXWIRE_TOKEN` environment variable. Never argv. */
export type TokenSource = { kind: 'file'; path: string } | { kind: 'env'; name: string };

/** Options both ends share. */
interface Common {
  token: TokenSource;
  /** `--json`: structured events on stdout instead of human lines on stderr. */
  json: boolean;
}

export interface ServerConfig extends Common {
  command: 'server';
  listen: Address;
  tls: { certFile: string; keyFile: string } | undefined;
  /** `--ws PATH`: accept clients as WebSocket connections on this HTTP(S) path instead of raw TCP/TLS. */
  wsPath: string | undefined;
  allow: AllowPattern[];
  allowRemote: AllowPattern[];
  /** `--max-channels`: most forwarded connections one client may have open at once (-L and -R together). */
  maxChannels: number;
  /** `--drain-timeout`: how long a graceful shutdown lets open channels finish, in ms. */
  drainTimeout: number;
}

export interface ClientConfig extends Common {
  command: 'client';
  /** The server's address (from `--server`, or from the `--ws` URL). */
  server: Address;
  /** `--ws URL` (ws:// or wss://): connect as a WebSocket client to this URL. */
  ws: URL | undefined;
  /** `--proxy URL`: reach the server through this HTTP proxy (CONNECT). */
  proxy: URL | undefined;
  /** TLS to the server: with `--tls`, or implied by a wss:// URL. */
  tls: { ca: string | undefined; fingerprint: string | undefined } | undefined;
  forwards: ForwardSpec[];
  /** `--retries`: connection attempts after a failure before giving up (Infinity: never give up). */
  retries: number;
  /** `--reconnect-max`: the longest wait between attempts, in ms. */
  reconnectMax: number;
  /** `--connect-wait`: how long a new -L connection waits for the session, in ms, before it is reset. */
  connectWait: number;
  drainTimeout: number;
}

export type Command =
  | ServerConfig
  | ClientConfig
  | { command: 'token' }
  | { command: 'help'; text: string; mistake: boolean }
  | { command: 'version' };

/** The environment variable read when no `--token-file` is given. */
export const TOKEN_ENV = 'MUXWIRE_TOKEN';
/** Where an `-L` or `-R` listens when the spec names no bind address: loopback only, as ssh does. */
export const DEFAULT_BIND = '127.0.0.1';
/** Where an `-L` or `-R` listens when its bind address is `*` or empty (as ssh's): every IPv4 interface. */
export const ALL_INTERFACES = '0.0.0.0';
/**
 * The server's default `--max-channels`. Each forwarded connection of a client holds one of the server's file
 * descriptors (its target's connection, or the one accepted on an -R port); without a bound of its own a
 * client could take them all (the session allows 65,536 channels) and lock every other client out. Not much
 * lower than 4,096: while it works through a burst, the server holds more of a client's connections than the
 * client has open (the tests' 4,000 connections aborted as fast as they came, 200 at a time, had up to 1,971
 * channels open on the server of a loaded machine, and 1,024 refused some of them). And well below what a
 * Node process may usually open (Node raises its soft limit to the hard one at start; systemd gives services
 * 524,288, Docker 1,048,576); where the hard limit is a few thousand, the server should be given a lower one.
 */
export const DEFAULT_MAX_CHANNELS = 4096;

export const USAGE = `muxwire: ssh-style port forwarding over one multiplexed (yamux) connection

Usage:
  muxwire server --listen HOST:PORT --token-file F [--tls-cert F --tls-key F] [--ws PATH]
                 [--allow HOST:PORT ...] [--allow-remote HOST:PORT ...] [--max-channels N] [--json]
  muxwire client (--server HOST:PORT | --ws URL) --token-file F [--tls] [--ca F | --fingerprint SHA256]
                 [-L [BIND:]PORT:HOST:HOSTPORT ...] [-R [BIND:]PORT:HOST:HOSTPORT ...] [--json]
  muxwire token          print a new random token; save it where only you can read it, for --token-file:
                         (umask 077; muxwire token > tunnel.token)

  -L  the client listens on BIND:PORT; each connection is carried to the server, which connects to HOST:HOSTPORT
  -R  the server listens on BIND:PORT; each connection is carried to the client, which connects to HOST:HOSTPORT
      BIND defaults to 127.0.0.1 (* or empty: every IPv4 interface, 0.0.0.0; an -R bind must still match
      an --allow-remote pattern, as 0.0.0.0); PORT 0 picks a free port (reported in the log).

The token is read from --token-file, else from the ${TOKEN_ENV} environment variable; never from argv.
The server is deny-by-default: -L targets must match an --allow pattern, -R binds an --allow-remote
pattern (HOST:PORT, either may be *; hosts are compared as written, ignoring case, not resolved).

Server options:
  --listen HOST:PORT       address to accept clients on
  --tls-cert F, --tls-key F  serve TLS with this certificate and key (PEM)
  --ws PATH                accept WebSocket connections on this path (HTTP, or HTTPS with --tls-cert)
  --max-channels N         most forwarded connections a client may have open at once on one connection,
                           -L and -R together (default ${DEFAULT_MAX_CHANNELS}); more are refused, and logged
Client options:
  --server HOST:PORT       the server to connect to
  --tls                    connect with TLS, verified against Node's built-in CAs, or --ca F, or
                           --fingerprint SHA256 (the certificate's SHA-256, hex, colons optional)
  --ws URL                 connect over WebSocket (ws://HOST:PORT/PATH, or wss:// for TLS) instead of --server
  --proxy URL              reach the server through an HTTP proxy (http://HOST:PORT, CONNECT; any transport)
  --retries N              retry at most N times in a row after a failure, then give up (default: never)
  --reconnect-max MS       longest wait between reconnection attempts (default 5000, at least 100)
  --connect-wait MS        how long a new -L connection waits for the session (default 10000)
Both:
  --drain-timeout MS       on SIGINT/SIGTERM, how long open connections may finish (default 5000)
  --json                   one JSON event per line on stdout instead of a status line and log on stderr
  -h, --help, --version
`;

const OPTIONS = {
  listen: { type: 'string' },
  server: { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  tls: { type: 'boolean' },
  ws: { type: 'string' },
  proxy: { type: 'string' },
  ca: { type: 'string' },
  fingerprint: { type: 'string' },
  'token-file': { type: 'string' },
  allow: { type: 'string', multiple: true },
  'allow-remote': { type: 'string', multiple: true },
  local: { type: 'string', short: 'L', multiple: true },
  remote: { type: 'string', short: 'R', multiple: true },
  retries: { type: 'string' },
  'reconnect-max': { type: 'string' },
  'connect-wait': { type: 'string' },
  'drain-timeout': { type: 'string' },
  'max-channels': { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean' },
} as const;

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true; strict: true }>>['values'];

/** Parses the command line (without `node` and the script), or throws {@link UsageError}. */
export function parseCommand(argv: string[], env: Record<string, string | undefined>): Command {
  if (argv.some((arg) => arg === '--token' || arg.startsWith('--token='))) {
    throw new UsageError(
      'the token is never taken from the command line (other users can read it in the ' +
        `process list): use --token-file F or the ${TOKEN_ENV} environment variable`,
    );
  }
  let parsed: { values: Values; positionals: string[] };
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.version === true) return { command: 'version' };
  // Asked for, the usage is the answer; with no command at all, it is a usage mistake (exit 2, on stderr).
  if (values.help === true || positionals.length === 0) {
    return { command: 'help', text: USAGE, mistake: values.help !== true };
  }
  if (positionals.length > 1) throw new UsageError(`unexpected argument '${positionals[1]}'`);
  const command = positionals[0];
  switch (command) {
    case 'server':
      return serverConfig(values, env);
    case 'client':
      return clientConfig(values, env);
    case 'token':
      return { command: 'token' };
    default:
      throw new UsageError(`unknown command '${command}' (expected server, client or token)`);
  }
}

function only(values: Values, command: string, names: (keyof Values)[]): void {
  for (const name of names) {
    if (values[name] === undefined) continue;
    // Named in both its forms where it has two: the user may have typed either (-L or --local).
    const short = (OPTIONS[name] as { short?: string }).short;
    throw new UsageError(`${short === undefined ? '' : `-${short}/`}--${name} is not an option of '${command}'`);
  }
}

function tokenSource(values: Values, env: Record<string, string | undefined>): TokenSource {
  if (values['token-file'] !== undefined) return { kind: 'file', path: values['token-file'] };
  if (env[TOKEN_ENV] !== undefined) return { kind: 'env', name: TOKEN_ENV };
  throw new UsageError(`a token is needed: --token-file F, or the ${TOKEN_ENV} environment variable`);
}

function serverConfig(values: Values, env: Record<string, string | undefined>): ServerConfig {
  only(values, 'server', [
    'server',
    'tls',
    'ca',
    'fingerprint',
    'local',
    'remote',
    'retries',
    'reconnect-max',
    'connect-wait',
    'proxy',
  ]);
  if (values.listen === undefined) throw new UsageError('server needs --listen HOST:PORT');
  const certFile = values['tls-cert'];
  const keyFile = values['tls-key'];
  if ((certFile === undefined) !== (keyFile === undefined))
    throw new UsageError('--tls-cert and --tls-key go together');
  const wsPath = values.ws;
  if (wsPath !== undefined && !/^\/[\x21-\x7e]*$/.test(wsPath))
    throw new UsageError(`--ws must be a path starting with /, not '${wsPath}'`);
  return {
    command: 'server',
    token: tokenSource(values, env),
    json: values.json === true,
    listen: parseAddress(values.listen, '--listen'),
    tls: certFile !== undefined && keyFile !== undefined ? { certFile, keyFile } : undefined,
    wsPath,
    allow: (values.allow ?? []).map((text) => parseAllow(text, '--allow')),
    allowRemote: (values['allow-remote'] ?? []).map((text) => parseAllow(text, '--allow-remote')),
    maxChannels:
      values['max-channels'] === undefined
        ? DEFAULT_MAX_CHANNELS
        : integer(values['max-channels'], '--max-channels', 1, 65_535),
    drainTimeout: milliseconds(values['drain-timeout'], '--drain-timeout', 5000),
  };
}

function clientConfig(values: Values, env: Record<string, string | undefined>): ClientConfig {
  only(values, 'client', ['listen', 'tls-cert', 'tls-key', 'allow', 'allow-remote', 'max-channels']);
  if ((values.server === undefined) === (values.ws === undefined))
    throw new UsageError('client needs --server HOST:PORT or --ws URL (one of them)');
  const ws = values.ws === undefined ? undefined : parseWsUrl(values.ws);
  const tls = values.tls === true || ws?.protocol === 'wss:';
  if (ws?.protocol === 'ws:' && values.tls === true) throw new UsageError('--tls with --ws needs a wss:// URL');
  if ((values.ca !== undefined || values.fingerprint !== undefined) && !tls) {
    throw new UsageError('--ca and --fingerprint need --tls (or a wss:// URL)');
  }
  if (values.ca !== undefined && values.fingerprint !== undefined)
    throw new UsageError('give --ca or --fingerprint, not both');
  const forwards = [
    ...(values.local ?? []).map((text) => parseForward(text, 'L')),
    ...(values.remote ?? []).map((text) => parseForward(text, 'R')),
  ];
  if (forwards.length === 0) throw new UsageError('client needs at least one -L or -R');
  if (forwards.length > MAX_FORWARDS) {
    throw new UsageError(`a client has at most ${MAX_FORWARDS} -L and -R forwards, not ${forwards.length}`);
  }
  return {
    command: 'client',
    token: tokenSource(values, env),
    json: values.json === true,
    server: ws === undefined ? parseAddress(values.server!, '--server') : wsAddress(ws),
    ws,
    proxy: values.proxy === undefined ? undefined : parseProxyUrl(values.proxy),
    tls: tls
      ? {
          ca: values.ca,
          fingerprint: values.fingerprint === undefined ? undefined : parseFingerprint(values.fingerprint),
        }
      : undefined,
    forwards,
    retries: values.retries === undefined ? Infinity : integer(values.retries, '--retries', 0, 1e9),
    reconnectMax: reconnectMax(values['reconnect-max']),
    connectWait: milliseconds(values['connect-wait'], '--connect-wait', 10_000),
    drainTimeout: milliseconds(values['drain-timeout'], '--drain-timeout', 5000),
  };
}

function integer(text: string, what: string, min: number, max: number): number {
  if (!/^\d+$/.test(text)) throw new UsageError(`${what} must be a whole number, not '${text}'`);
  const value = Number(text);
  if (value < min || value > max) throw new UsageError(`${what} must be between ${min} and ${max}, not ${value}`);
  return value;
}

function milliseconds(text: string | undefined, what: string, fallback: number): number {
  return text === undefined ? fallback : integer(text, what, 0, 86_400_000);
}

/**
 * `--reconnect-max`: at least the first wait between attempts ({@link INITIAL_DELAY_MS}). Below it the waits
 * would all be shorter than the first, down to none at 0: a busy loop of attempts against a server that is down.
 */
function reconnectMax(text: string | undefined): number {
  if (text === undefined) return 5000;
  const value = milliseconds(text, '--reconnect-max', 5000);
  if (value < INITIAL_DELAY_MS) {
    throw new UsageError(
      `--reconnect-max must be at least ${INITIAL_DELAY_MS} (ms, the first wait between attempts), not ${value}`,
    );
  }
  return value;
}

function port(text: string, what: string): number {
  return integer(text, `the port in ${what}`, 0, 65535);
}

/**
 * Splits on ':' outside IPv6 brackets: `[::1]:80` is two parts, `::1` is not accepted unbracketed
 * (ambiguous with the separators).
 */
function splitColons(text: string, what: string): string[] {
  const parts: string[] = [];
  let current = '';
  let inBrackets = false;
  for (const ch of text) {
    if (ch === '[' && !inBrackets && current === '') inBrackets = true;
    else if (ch === ']' && inBrackets) inBrackets = false;
    else if (ch === ':' && !inBrackets) {
      parts.push(current);
      current = '';
    } else current += ch;
  }
  if (inBrackets) throw new UsageError(`${what}: unclosed '[' in '${text}'`);
  parts.push(current);
  return parts;
}

/**
 * Whether `text` is written as a host name or an address may be: letters, digits, '-', '.' and '_' (host
 * names), ':' (IPv6) and '%' (an IPv6 zone, `fe80::1%eth0`), nothing else; at most 255 characters. Both
 * ends' hosts cross the tunnel and are written in the other end's log: no character there can start a new
 * line or a terminal escape.
 */
export function isHostText(text: string): boolean {
  return text.length <= 255 && /^[A-Za-z0-9._:%-]+$/.test(text);
}

function host(text: string, what: string): string {
  if (text === '') throw new UsageError(`${what}: empty host`);
  if (!isHostText(text)) throw new UsageError(`${what}: '${text}' is not a host name or address`);
  return text;
}

/** A `--ws` URL: ws:// or wss://, with a host. */
function parseWsUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`--ws must be a URL (ws://HOST:PORT/PATH or wss://...), not '${text}'`);
  }
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:')
    throw new UsageError(`--ws must be a ws:// or wss:// URL, not '${text}'`);
  // (Not echoed: they would be in the log too.) The token authenticates; a user and password would be on the
  // command line, in the log, and sent as Basic credentials before a --fingerprint is checked.
  if (url.username !== '' || url.password !== '')
    throw new UsageError('--ws with credentials (user:password@) is not supported: the token authenticates');
  return url;
}

/** A `--proxy` URL: http://HOST:PORT, without credentials (they would be on argv). */
function parseProxyUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`--proxy must be a URL (http://HOST:PORT), not '${text}'`);
  }
  if (url.protocol !== 'http:')
    throw new UsageError(`--proxy must be an http:// URL (the proxy is asked for CONNECT), not '${text}'`);
  if (url.username !== '' || url.password !== '')
    throw new UsageError('--proxy with credentials is not supported (they would be visible on the command line)');
  return url;
}

function wsAddress(url: URL): Address {
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  return { host, port: url.port === '' ? (url.protocol === 'wss:' ? 443 : 80) : Number(url.port) };
}

/** `HOST:PORT` or `[IPV6]:PORT`. */
export function parseAddress(text: string, what: string): Address {
  const parts = splitColons(text, what);
  if (parts.length !== 2) throw new UsageError(`${what} must be HOST:PORT (IPv6 in brackets), not '${text}'`);
  return { host: host(parts[0]!, what), port: port(parts[1]!, what) };
}

/** `[BIND:]PORT:HOST:HOSTPORT`, as ssh's -L and -R. */
export function parseForward(text: string, kind: 'L' | 'R'): ForwardSpec {
  const what = `-${kind} ${text}`;
  const parts = splitColons(text, what);
  if (parts.length !== 3 && parts.length !== 4) {
    throw new UsageError(`${what}: expected [BIND:]PORT:HOST:HOSTPORT (IPv6 in brackets)`);
  }
  const [bind, listenPort, target, targetPort] = parts.length === 4 ? parts : [DEFAULT_BIND, ...parts];
  return {
    kind,
    // As ssh: an empty bind address or '*' listens on every interface.
    bind: bind === '' || bind === '*' ? ALL_INTERFACES : host(bind!, what),
    port: port(listenPort!, what),
    host: host(target!, what),
    // The listening port may be 0 (any free one); a target's port may not: nothing can be reached there.
    hostPort: integer(targetPort!, `the target port in ${what}`, 1, 65535),
    text,
  };
}

/** `HOST:PORT` where either may be `*`. */
export function parseAllow(text: string, what: string): AllowPattern {
  const parts = splitColons(text, `${what} ${text}`);
  if (parts.length !== 2) throw new UsageError(`${what} must be HOST:PORT (either may be *), not '${text}'`);
  return {
    host: parts[0] === '*' ? '*' : host(parts[0]!, what).toLowerCase(),
    port: parts[1] === '*' ? '*' : port(parts[1]!, what),
    text,
  };
}

/** True when some pattern admits `host`:`port` (host names compared case-insensitively, never resolved). */
export function allowed(patterns: readonly AllowPattern[], host: string, port: number): boolean {
  const name = host.toLowerCase();
  return patterns.some((p) => (p.host === '*' || p.host === name) && (p.port === '*' || p.port === port));
}

/** A SHA-256 fingerprint as 64 hex digits, colons allowed; returned upper-case with colons, as Node prints them. */
export function parseFingerprint(text: string): string {
  const hex = text.replace(/^sha256:/i, '').replace(/:/g, '');
  if (!/^[0-9a-fA-F]{64}$/.test(hex))
    throw new UsageError(`--fingerprint must be a SHA-256 in hex (64 digits), not '${text}'`);
  return hex.toUpperCase().match(/../g)!.join(':');
}

/** `host:port` for messages, with brackets around IPv6 addresses. */
export function formatAddress(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
