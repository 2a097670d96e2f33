/**
 * A muxwire WebSocket echo server in its own process, for the browser test that kills the server
 * (test/browser/chromium.test.ts). It prints `PORT <n>` once listening. It does nothing unless
 * MUXWIRE_WS_CHILD=1 (the test runner also loads every file under dist/test/ as a test file).
 */
import type { AddressInfo } from 'node:net';
import { type Channel, createWebSocketServer } from '../../src/index.js';

if (process.env.MUXWIRE_WS_CHILD === '1') {
  const server = createWebSocketServer({ port: 0, host: '127.0.0.1', path: '/mux' }, (session) => {
    session.on('channel', (channel: Channel) => {
      channel.on('error', () => {});
      channel.pipe(channel);
    });
  });
  server.on('listening', () => {
    console.log(`PORT ${(server.address() as AddressInfo).port}`);
  });
}
