/**
 * The connection a tunnel's session runs over: TCP or TLS, opened by the client (`dialServer`) and accepted
 * by the server (`listenTunnel`). Failures become `TunnelError`s a person can act on: an unreachable server,
 * an untrusted certificate, a port in use.
 * @module
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import type { Address, ClientConfig, ServerConfig } from './args.js';
import { formatAddress } from './args.js';
import { TunnelError, describeSocketError } from './errors.js';

/** How long connecting to the server (TCP and TLS handshake) may take. */
export const DIAL_TIMEOUT_MS = 10_000;

/** OpenSSL's verification codes that mean "this certificate is not to be trusted". */
const CERT_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID',
  'CERT_SIGNATURE_FAILURE', 'CERT_REVOKED', 'CERT_UNTRUSTED', 'CERT_REJECTED', 'ERR_TLS_CERT_ALTNAME_INVALID',
]);

function readPem(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new TunnelError('ERR_TUNNEL_TLS', `cannot read ${what} ${path}: ${(error as Error).message}`);
  }
}

/** Client side TLS options, read once at start (a missing file is an error before any connection). */
export function clientTlsOptions(config: ClientConfig): tls.ConnectionOptions | undefined {
  if (config.tls === undefined) return undefined;
  const host = config.server.host;
  const options: tls.ConnectionOptions = { host, servername: net.isIP(host) === 0 ? host : undefined };
  if (config.tls.ca !== undefined) options.ca = readPem(config.tls.ca, 'the CA certificate');
  // With a fingerprint the certificate is trusted for being that exact certificate, not for its chain, so
  // the chain check is off and the fingerprint is checked once the handshake is done (dialServer).
  if (config.tls.fingerprint !== undefined) options.rejectUnauthorized = false;
  return options;
}

/**
 * Connects to the server over TCP, or TLS when `tlsOptions` is given, and resolves once the connection (and
 * the handshake) is complete.
 */
export function dialServer(server: Address, tlsOptions: tls.ConnectionOptions | undefined, fingerprint: string | undefined): Promise<net.Socket> {
  const where = formatAddress(server.host, server.port);
  return new Promise((resolve, reject) => {
    const socket: net.Socket = tlsOptions === undefined
      ? net.connect({ host: server.host, port: server.port, noDelay: true })
      : tls.connect({ ...tlsOptions, port: server.port, host: server.host });
    const fail = (error: TunnelError): void => {
      clearTimeout(timer);
      socket.destroy();
      reject(error);
    };
    const timer = setTimeout(() => {
      fail(new TunnelError('ERR_TUNNEL_UNREACHABLE', `cannot reach the server ${where}: no answer in ${DIAL_TIMEOUT_MS / 1000} s`));
    }, DIAL_TIMEOUT_MS);
    socket.once('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== undefined && CERT_CODES.has(error.code)) {
        fail(new TunnelError('ERR_TUNNEL_CERT', `the server ${where} presented a certificate that is not trusted `
          + `(${error.code}: ${error.message}); check --ca, or use --fingerprint`, { cause: error }));
      } else if (tlsOptions !== undefined && (error.code ?? '').startsWith('ERR_SSL')) {
        fail(new TunnelError('ERR_TUNNEL_TLS', `TLS with the server ${where} failed: ${error.message}`, { cause: error }));
      } else {
        fail(new TunnelError('ERR_TUNNEL_UNREACHABLE', `cannot reach the server ${where}: ${describeSocketError(error)}`, { cause: error }));
      }
    });
    socket.once(tlsOptions === undefined ? 'connect' : 'secureConnect', () => {
      if (fingerprint !== undefined) {
        const actual = (socket as tls.TLSSocket).getPeerCertificate().fingerprint256;
        if (actual !== fingerprint) {
          fail(new TunnelError('ERR_TUNNEL_CERT', `the server ${where} presented a certificate with SHA-256 `
            + `fingerprint ${actual}, not the expected ${fingerprint}`));
          return;
        }
      }
      clearTimeout(timer);
      socket.removeAllListeners('error');
      socket.setNoDelay(true);
      resolve(socket);
    });
  });
}

/**
 * Listens for clients on `config.listen`, TCP or TLS; `onConnection` gets each connection once it is ready
 * (after the handshake for TLS). `onTlsError` hears of failed handshakes (a client that does not trust the
 * certificate, or not TLS at all).
 */
export function listenTunnel(
  config: ServerConfig, onConnection: (socket: net.Socket) => void, onTlsError: (error: Error, remote: string) => void,
): Promise<net.Server> {
  let server: net.Server;
  if (config.tls === undefined) {
    server = net.createServer({ noDelay: true }, onConnection);
  } else {
    const cert = readPem(config.tls.certFile, 'the certificate');
    const key = readPem(config.tls.keyFile, 'the key');
    let secure: tls.Server;
    try {
      secure = tls.createServer({ cert, key }, (socket) => {
        socket.setNoDelay(true);
        onConnection(socket);
      });
    } catch (error) {
      throw new TunnelError('ERR_TUNNEL_TLS', `cannot use --tls-cert/--tls-key: ${(error as Error).message}`);
    }
    secure.on('tlsClientError', (error, socket) => onTlsError(error, formatAddress(socket.remoteAddress ?? '?', socket.remotePort ?? 0)));
    server = secure;
  }
  const where = formatAddress(config.listen.host, config.listen.port);
  return new Promise((resolve, reject) => {
    server.once('error', (error) => {
      reject(new TunnelError('ERR_TUNNEL_LISTEN', `cannot listen on ${where}: ${describeSocketError(error)}`));
    });
    server.listen({ host: config.listen.host, port: config.listen.port, backlog: 1024 }, () => {
      server.removeAllListeners('error');
      server.on('error', () => {});
      resolve(server);
    });
  });
}
