/**
 * A muxwire echo server over TCP in its own process, for tests that block their own event loop while the
 * peer answers (test/busy-loop.test.ts). It prints `PORT <n>` once listening and echoes every channel, ending
 * its side after the client's end. It does nothing unless MUXWIRE_TCP_ECHO_CHILD=1 (the test runner also
 * loads every file under dist/test/ as a test file).
 */
import net from 'node:net';
import { multiplexedServer } from '../../src/index.js';

if (process.env.MUXWIRE_TCP_ECHO_CHILD === '1') {
  const server = net.createServer((socket) => {
    const session = multiplexedServer(socket);
    session.on('channel', (channel) => {
      channel.on('error', () => {});
      channel.pipe(channel);
    });
  });
  server.listen(0, '127.0.0.1', () => {
    console.log(`PORT ${(server.address() as net.AddressInfo).port}`);
  });
  // Gone with the test that started it.
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
}
