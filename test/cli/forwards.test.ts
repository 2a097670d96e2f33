/**
 * Forwarded sockets when their tunnel goes away, in one process: the answering end's splice of a target
 * socket whose channel ended and failed in the same turn (the session lost right after the FIN came), and the
 * shutdown's reset of what is left. Each must close its socket (and its file descriptor) for good.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { Writable } from 'node:stream';
import { Session } from '../../src/index.js';
import { coalescingTransport } from '../../src/cli/coalesce.js';
import { ForwardedSockets, answer } from '../../src/cli/forwards.js';
import { TUNNEL_SESSION_OPTIONS, encode } from '../../src/cli/protocol.js';
import { Reporter, Traffic } from '../../src/cli/status.js';
import { RepeatedEvents } from '../../src/cli/repeats.js';
import { Flag, FrameType } from '../../src/core/frame.js';
import { frame, until, within } from '../helpers.js';

const TIMEOUT = 15_000;

/** Open TCP sockets of this process (listeners not counted). */
function tcpSockets(): number {
  return process.getActiveResourcesInfo().filter((name) => name === 'TCPSocketWrap').length;
}

/** A server on 127.0.0.1 with an OS-picked port. */
async function listen(server: net.Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as net.AddressInfo).port;
}

describe('forwarded sockets when the tunnel goes away', () => {
  test(
    'targets whose request, FIN and the loss of the session arrive together are reset, and none is left open',
    { timeout: TIMEOUT },
    async () => {
      const COUNT = 20;
      const before = tcpSockets();
      // The target answers once the request has ended: by then the tunnel must have reset its connection,
      // so the answer fails (a connection only closed, or left open, would take it).
      const answers: string[] = [];
      const targetSockets: net.Socket[] = [];
      const target = net.createServer({ allowHalfOpen: true }, (socket) => {
        targetSockets.push(socket);
        socket.on('error', () => {});
        socket.resume();
        socket.on('end', () =>
          socket.write('response', (error) =>
            answers.push(error ? String((error as NodeJS.ErrnoException).code) : 'taken'),
          ),
        );
      });
      const targetPort = await listen(target);
      const quiet = new Writable({ write: (_chunk, _encoding, callback) => callback() });
      const reporter = new Reporter(true, quiet, quiet);
      const context = {
        reporter,
        perChannel: new RepeatedEvents(reporter),
        traffic: new Traffic(),
        sockets: new ForwardedSockets(),
      };
      let served = 0;
      const tunnel = net.createServer({ allowHalfOpen: true }, (socket) => {
        const session = new Session(coalescingTransport(socket), 'server', TUNNEL_SESSION_OPTIONS);
        session.on('channel', (channel) => {
          served += 1;
          void answer(channel, 'connect', () => ({ host: '127.0.0.1', port: targetPort }), context);
        });
      });
      const tunnelPort = await listen(tunnel);
      const client = net.connect(tunnelPort, '127.0.0.1');
      client.on('error', () => {});
      client.resume();
      await once(client, 'connect');
      try {
        // COUNT channels, each opened with its request, then the forwarded program's bytes and FIN, and the
        // end of the tunnel's connection, all in one go: a connection lost right after a relay passed them.
        const request = encode({ type: 'connect', host: '127.0.0.1', port: targetPort });
        const frames: Buffer[] = [];
        for (let id = 1; id < 2 * COUNT; id += 2) {
          frames.push(frame(FrameType.data, Flag.syn, id, request));
          frames.push(frame(FrameType.data, 0, id, Buffer.from('request')));
          frames.push(frame(FrameType.data, Flag.fin, id, 0));
        }
        client.end(Buffer.concat(frames));
        await until(() => answers.length === COUNT, 5000, `the targets' answers (${answers.length} of ${COUNT})`);
        await until(() => context.traffic.connections === 0, 2000, "the forwarded sockets' close");
        assert.equal(served, COUNT);
        assert.deepEqual(
          answers.filter((answer) => answer !== 'EPIPE' && answer !== 'ECONNRESET'),
          [],
          'every target connection was reset before its answer',
        );
      } finally {
        client.destroy();
        for (const socket of targetSockets) socket.destroy();
        target.close();
        tunnel.close();
      }
      // The target's ends close once their answer failed; the tunnel's ends must be gone too.
      await until(() => tcpSockets() <= before, 2000, "the sockets' handles to go");
    },
  );

  test(
    "the shutdown's reset leaves a socket just ended to close with its FIN, and does not count it",
    { timeout: TIMEOUT },
    async () => {
      const listener = net.createServer({ allowHalfOpen: true });
      const port = await listen(listener);
      const accepted = once(listener, 'connection');
      const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
      socket.on('error', () => {});
      await once(socket, 'connect');
      const [peer] = (await accepted) as [net.Socket];
      listener.close();
      const received: string[] = [];
      peer.setEncoding('utf8').on('data', (chunk: string) => received.push(chunk));
      const peerEnded = once(peer, 'end');
      const sockets = new ForwardedSockets();
      sockets.add(socket);
      // Not once(): the old reset's EINVAL 'error' would reject it.
      const closed = new Promise((resolve) => socket.once('close', resolve));
      try {
        // The last of a stream handed over, then the shutdown's reset in the same turn: the FIN is pending.
        socket.end('last words');
        const reset = sockets.resetUnfinished();
        await within(peerEnded, 2000, "the peer's end of data");
        assert.equal(received.join(''), 'last words');
        peer.end();
        await within(closed, 2000, "the socket's close");
        assert.equal(reset, 0, 'a complete stream is not counted as reset');
      } finally {
        socket.destroy();
        peer.destroy();
      }
    },
  );
});
