/**
 * How `createWebSocketServer({ server, path })` shares an HTTP(S) server with the rest of an application. Its
 * `ws` server runs with `noServer`, and the 'upgrade' listener added here hands it only the requests for its
 * path. `ws`'s own `server` option would add a listener that answers every other path with 400 and ends the
 * socket, also one another listener had taken: a second WebSocket endpoint on the same server got that 400
 * (or, when its listener came first, found it written into its live WebSocket), so none could share it.
 * @module
 */
import type { Server as HttpServer, IncomingMessage } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { WebSocketServer as WsServer } from 'ws';

/** Each 'upgrade' listener of this module, with its `ws` server (whose `shouldHandle()` says which requests it takes). */
const listenersOf = new WeakMap<object, WsServer>();

/**
 * @internal Attaches a `noServer` `ws` server to `httpServer` as the `server` option would, except for requests
 * for other paths (see the module comment): the same `'listening'` and `'error'` events, `address()` the HTTP
 * server's, and `close()` takes the listeners off again. A request the `ws` server does not take is left to
 * the server's other 'upgrade' listeners. If every one of them is of this module and none takes it, the first
 * answers 400 (what the `ws` server answered before), since nobody else would: Node hands an upgrade to the
 * 'upgrade' listeners alone, and one that none of them answers waits until the client gives up.
 */
export function attachToHttpServer(wss: WsServer, httpServer: HttpServer | HttpsServer): void {
  const onUpgrade = (request: IncomingMessage, socket: Duplex, head: Buffer): void => {
    // The path without the query string, as `ws` compares it.
    if (wss.shouldHandle(request)) {
      wss.handleUpgrade(request, socket, head, (client) => wss.emit('connection', client, request));
      return;
    }
    const all = httpServer.listeners('upgrade');
    if (all[0] === onUpgrade && all.every((listener) => listenersOf.get(listener)?.shouldHandle(request) === false)) {
      refuse(socket);
    }
  };
  listenersOf.set(onUpgrade, wss);
  const onListening = (): boolean => wss.emit('listening');
  const onError = (error: Error): boolean => wss.emit('error', error);
  httpServer.on('upgrade', onUpgrade);
  httpServer.on('listening', onListening);
  httpServer.on('error', onError);
  let attached = true;
  const close = wss.close.bind(wss);
  wss.close = (callback) => {
    if (attached) {
      attached = false;
      httpServer.off('upgrade', onUpgrade);
      httpServer.off('listening', onListening);
      httpServer.off('error', onError);
    }
    close(callback);
  };
  // `ws` throws in `noServer` mode; with `server` it gave that server's address, null once closed.
  (wss as { address(): AddressInfo | string | null }).address = () => (attached ? httpServer.address() : null);
}

/** Answers an upgrade request with 400 and closes the connection. */
function refuse(socket: Duplex): void {
  socket.on('error', () => socket.destroy());
  socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n', () => socket.destroy());
}
