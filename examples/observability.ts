/**
 * Watching sessions: the `logger` option, `stats()` on sessions and channels, the `channelOpen` and
 * `channelClose` events, and Node's `muxwire:session` diagnostics channel.
 *
 *   node dist/examples/observability.js
 *   NODE_DEBUG=muxwire node dist/examples/observability.js    # every session's log records on stderr too
 *
 * A client opens a few channels to an echo server that accepts only one at a time, so some are refused, and
 * resets one itself; then it prints what the counters saw.
 */
import diagnostics from 'node:diagnostics_channel';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { pipeline } from 'node:stream';
import { text } from 'node:stream/consumers';
import {
  type Channel,
  LOG_LEVELS,
  type LogRecord,
  SESSION_CHANNEL,
  type Session,
  connect,
  createServer,
  formatLogRecord,
} from 'muxwire';

// Tools (metrics exporters, APM agents) learn of every Node session here, without a hook in the application.
const seen: Session[] = [];
diagnostics.subscribe(SESSION_CHANNEL, (message) => seen.push((message as { session: Session }).session));

// A logger that prints records from `info` up (`debug` adds resets and window stalls, one per channel).
const atLeastInfo = (record: LogRecord): boolean => LOG_LEVELS.indexOf(record.level) >= LOG_LEVELS.indexOf('info');
const logger = (record: LogRecord): void => {
  if (atLeastInfo(record)) console.log(`[log] ${formatLogRecord(record)}`);
};

// acceptBacklog 1: while the application has not taken a channel, the next one is refused.
const server = createServer({ acceptBacklog: 1, logger }, (session) => {
  const take = async (): Promise<void> => {
    for await (const channel of session) {
      pipeline(channel, channel, () => {}); // echo; a reset ends only this channel
      await new Promise((resolve) => setTimeout(resolve, 200)); // a slow application: the queue fills
    }
  };
  take().catch(() => {});
});
server.listen(0, '127.0.0.1');
await once(server, 'listening');

const session = await connect({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, logger });
session.on('channelClose', (stats, error) => {
  console.log(
    `channel ${stats.id} closed (${stats.state}): ${stats.bytesOut} bytes out, ${stats.bytesIn} in` +
      (error ? `, ${error.name}` : ''),
  );
});

// Three channels at once: the server takes the first, queues the second, refuses the third.
const ask = async (channel: Channel, message: string): Promise<string> => {
  channel.end(message);
  try {
    return await text(channel);
  } catch (error) {
    return `failed: ${(error as Error).name}`;
  }
};
const answers = await Promise.all(['one', 'two', 'three'].map((word) => ask(session.dial(), word)));
console.log(`answers: ${answers.join(', ')}`);

// One more, reset by the client before it ends.
const reset = session.dial();
reset.on('error', () => {});
reset.write('never mind');
await new Promise((resolve) => setTimeout(resolve, 50));
reset.destroy();

// close() returns once the server has answered what came before: its counters include the reset.
await session.close();
server.close();

const stats = session.stats();
console.log(
  `client: ${stats.bytesOut} bytes in ${stats.framesOut} frames out, ${stats.bytesIn} bytes in ${stats.framesIn}` +
    ` frames in; ${stats.outboundChannels} channels dialled, ${stats.refusalsIn} refused, ${stats.resetsOut} reset`,
);
const serverSession = seen.find((s) => s !== session);
if (serverSession !== undefined) {
  const s = serverSession.stats();
  console.log(
    `server: ${s.inboundChannels} channels opened by the client, ${s.refusalsOut} refused, ${s.resetsIn} reset by the client`,
  );
}
console.log(`sessions announced on ${SESSION_CHANNEL}: ${seen.length}`);
