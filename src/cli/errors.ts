/**
 * The tunnel's errors: one class with a stable `code`, so that both ends (and `--json` readers) can tell a
 * wrong token from a denied target from a port in use without parsing messages.
 * @module
 */

/** Every failure the tunnel reports, by code. */
export type TunnelErrorCode =
  | 'ERR_TUNNEL_TOKEN' // this end's own token is missing, unreadable or too short
  | 'ERR_TUNNEL_AUTH' // the server refused the token
  | 'ERR_TUNNEL_DENIED' // the server's --allow / --allow-remote does not admit the forward
  | 'ERR_TUNNEL_CONNECT' // the forward's target could not be reached
  | 'ERR_TUNNEL_LISTEN' // a listener could not be opened (port in use, no such address, no permission)
  | 'ERR_TUNNEL_UNREACHABLE' // the client could not reach the server
  | 'ERR_TUNNEL_CERT' // the server's TLS certificate was not trusted
  | 'ERR_TUNNEL_TLS' // TLS files or handshake failed otherwise
  | 'ERR_TUNNEL_PROTOCOL' // the peer sent something the control protocol does not allow
  | 'ERR_TUNNEL_BUSY' // the server had no place for another handshake (too many in progress)
  | 'ERR_TUNNEL_TIMEOUT'; // a handshake or a wait for the session took too long

/** A tunnel failure with a stable code and a message meant for the person running the command. */
export class TunnelError extends Error {
  override name = 'TunnelError';
  constructor(
    readonly code: TunnelErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Codes after which the client stops instead of reconnecting: retrying cannot fix them. */
export const FATAL_CODES: ReadonlySet<TunnelErrorCode> = new Set([
  'ERR_TUNNEL_TOKEN',
  'ERR_TUNNEL_AUTH',
  'ERR_TUNNEL_DENIED',
  'ERR_TUNNEL_LISTEN',
  'ERR_TUNNEL_CERT',
  'ERR_TUNNEL_TLS',
]);

/** A one-line description of a socket error (`ECONNREFUSED`, ...), for messages. */
export function describeSocketError(error: unknown): string {
  const e = error as NodeJS.ErrnoException;
  switch (e?.code) {
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'EADDRINUSE':
      return 'address already in use';
    case 'EADDRNOTAVAIL':
      return 'address not available on this machine';
    case 'EACCES':
      return 'permission denied';
    case 'ENOTFOUND':
      return 'host name not found';
    case 'ETIMEDOUT':
      return 'timed out';
    case 'ECONNRESET':
      return 'connection reset';
    case 'EHOSTUNREACH':
      return 'host unreachable';
    case 'ENETUNREACH':
      return 'network unreachable';
    case 'EMFILE':
      return "too many open files (the process's file descriptor limit)";
    case 'ENFILE':
      return "too many open files (the system's limit)";
    default:
      return e?.message ?? String(error);
  }
}
