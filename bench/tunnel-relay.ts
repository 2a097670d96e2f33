// A minimal TCP relay in Node, without multiplexing, authentication or status: the floor the tunnel's
// figures are compared with in bench/tunnel.ts (path `relay`). Two of these in a chain (one standing for the
// tunnel's client, one for its server) make the same topology as the tunnel, four sockets and two extra
// processes per forwarded connection, but every connection gets its own TCP connection between the two.
//
//   node dist/bench/tunnel-relay.js LISTEN_PORT:TARGET_PORT ...     (all on 127.0.0.1)
//
// Prints `ready` on stdout once every listener is up. Stops on SIGTERM.
import net from 'node:net';

const pairs = process.argv.slice(2).map((arg) => {
  const [listen, target] = arg.split(':').map(Number);
  if (!Number.isInteger(listen) || !Number.isInteger(target))
    throw new Error(`expected LISTEN_PORT:TARGET_PORT, got ${arg}`);
  return { listen: listen!, target: target! };
});

/** Joins two sockets both ways; either failing resets the other (as the tunnel does). */
function join(a: net.Socket, b: net.Socket): void {
  a.pipe(b);
  b.pipe(a);
  a.on('error', () => b.resetAndDestroy());
  b.on('error', () => a.resetAndDestroy());
}

const servers = await Promise.all(
  pairs.map(
    ({ listen, target }) =>
      new Promise<net.Server>((resolve, reject) => {
        const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
          join(socket, net.connect({ host: '127.0.0.1', port: target, allowHalfOpen: true, noDelay: true }));
        });
        server.once('error', reject);
        server.listen({ host: '127.0.0.1', port: listen, backlog: 1024 }, () => resolve(server));
      }),
  ),
);
process.stdout.write('ready\n');
process.once('SIGTERM', () => {
  for (const server of servers) server.close();
  process.exit(0);
});
