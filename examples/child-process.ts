/**
 * A session over a child process's stdin and stdout: the parent opens channels, the child answers each.
 *
 *   node dist/examples/child-process.js
 *
 * The child's stdout carries the session, so it must not print anything there (log to stderr instead).
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { Duplex, Transform, pipeline } from 'node:stream';
import { text } from 'node:stream/consumers';
import { fileURLToPath } from 'node:url';
import { multiplexedClient, multiplexedServer } from 'muxwire';

if (process.argv[2] === 'child') {
  // stdin and stdout joined into one duplex are the transport.
  const session = multiplexedServer(Duplex.from({ readable: process.stdin, writable: process.stdout }));
  session.on('channel', (channel) => {
    const upper = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        done(null, chunk.toString().toUpperCase());
      },
    });
    pipeline(channel, upper, channel, (error) => {
      if (error) console.error(`child: channel ${channel.id} failed: ${error.message}`);
    });
  });
  // When the parent closes the session, the child's stdin ends and the process exits by itself.
} else {
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), 'child'], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const session = multiplexedClient(Duplex.from({ readable: child.stdout, writable: child.stdin }));
  const words = ['alpha', 'beta', 'gamma'];
  const answers = await Promise.all(
    words.map((word) => {
      const channel = session.dial();
      channel.end(word);
      return text(channel);
    }),
  );
  console.log(answers.join(' '));
  await session.close();
  const [code] = (await once(child, 'exit')) as [number | null];
  console.log(`child exited with code ${code}`);
}
