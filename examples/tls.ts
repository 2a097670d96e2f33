/**
 * A session over TLS: the transport is a `tls.TLSSocket` instead of a `net.Socket`; nothing else changes.
 *
 *   node dist/examples/tls.js key.pem cert.pem
 *
 * A key and a self-signed certificate for 127.0.0.1 can be made with
 *   openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
 *     -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 -keyout key.pem -out cert.pem
 */
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { pipeline } from 'node:stream';
import { text } from 'node:stream/consumers';
import tls from 'node:tls';
import { multiplexedClient, multiplexedServer } from 'muxwire';

const [keyFile, certFile] = process.argv.slice(2);
if (keyFile === undefined || certFile === undefined) {
  console.error('usage: node dist/examples/tls.js key.pem cert.pem');
  process.exit(2);
}
const key = readFileSync(keyFile);
const cert = readFileSync(certFile);

// Server: every TLS connection carries a session; every channel echoes.
const server = tls.createServer({ key, cert }, (socket) => {
  const session = multiplexedServer(socket);
  session.on('channel', (channel) => pipeline(channel, channel, () => {}));
});
server.listen(0, '127.0.0.1');
await once(server, 'listening');

// Client: trusts the self-signed certificate, and starts the session once the handshake is done.
const socket = tls.connect({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, ca: cert });
await once(socket, 'secureConnect');
const session = multiplexedClient(socket);
const channel = session.dial();
channel.end('hello over TLS');
console.log(`${await text(channel)} (${socket.getProtocol()})`);
await session.close();
server.close();
