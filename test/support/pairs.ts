/**
 * Session pairs over real loopback connections, optionally through the fault proxy and optionally over TLS.
 */
import { once } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import { type Session, type SessionOptions, multiplexedClient, multiplexedServer } from '../../src/index.js';
import { FaultProxy, type FaultProxyOptions } from './fault-proxy.js';
import type { TlsMaterial } from './self-signed.js';

export interface ProxiedPair {
  client: Session;
  server: Session;
  /** The proxy between them (undefined when `proxy: false`). */
  proxy: FaultProxy | undefined;
  /** The client's socket (to the proxy) and the server's (from the proxy). */
  clientSocket: net.Socket;
  serverSocket: net.Socket;
  /** Destroys both sessions, both sockets and the proxy; resolves once the proxy has closed. */
  close(): Promise<void>;
}

export interface ProxiedPairOptions {
  /** Proxy options without `target` (filled in), or false for a direct connection. */
  proxy?: Omit<FaultProxyOptions, 'target'> | false;
  client?: SessionOptions;
  server?: SessionOptions;
  /** Runs TLS end to end through the proxy, with this key and certificate. */
  tls?: TlsMaterial;
  /** '127.0.0.1' (default) or '::1'. */
  host?: '127.0.0.1' | '::1';
}

/** Two connected sockets, through the proxy when asked; then sessions on them. */
export async function proxiedPair(options: ProxiedPairOptions = {}): Promise<ProxiedPair> {
  const host = options.host ?? '127.0.0.1';
  const material = options.tls;
  const listener: net.Server =
    material !== undefined ? tls.createServer({ key: material.key, cert: material.cert }) : net.createServer();
  listener.listen(0, host);
  await once(listener, 'listening');
  const targetPort = (listener.address() as net.AddressInfo).port;
  let proxy: FaultProxy | undefined;
  try {
    if (options.proxy !== false)
      proxy = await FaultProxy.start({ ...options.proxy, host, target: { host, port: targetPort } });
    const port = proxy?.port ?? targetPort;
    const accepted = once(listener, material !== undefined ? 'secureConnection' : 'connection');
    const clientSocket: net.Socket =
      material !== undefined
        ? tls.connect({ host, port, ca: material.cert, servername: 'localhost' })
        : net.connect(port, host);
    await once(clientSocket, material !== undefined ? 'secureConnect' : 'connect');
    const [serverSocket] = (await accepted) as [net.Socket];
    listener.close();
    const client = multiplexedClient(clientSocket, { keepAliveInterval: 0, ...options.client });
    const server = multiplexedServer(serverSocket, { keepAliveInterval: 0, ...options.server });
    return {
      client,
      server,
      proxy,
      clientSocket,
      serverSocket,
      async close() {
        client.destroy();
        server.destroy();
        clientSocket.destroy();
        serverSocket.destroy();
        await proxy?.close();
      },
    };
  } catch (error) {
    listener.close();
    await proxy?.close();
    throw error;
  }
}
