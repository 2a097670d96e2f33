/**
 * The `muxwire` command as a function: parses argv, runs the subcommand, handles SIGINT/SIGTERM (the first
 * shuts down gracefully, a second exits at once with 128 + its number) and returns the exit code: 0 done,
 * 1 failed, 2 usage.
 * @module
 */
import { readFileSync } from 'node:fs';
import { constants } from 'node:os';
import { type Command, UsageError, parseCommand } from './args.js';
import { newToken } from './auth.js';
import { runClient } from './client.js';
import { TunnelError } from './errors.js';
import { runServer } from './server.js';
import { Reporter } from './status.js';

/**
 * A repeat of the first signal within this time is the same request delivered twice, not a second one: GNU
 * `timeout` signals its child and then its own process group (the child again), and a terminal's Ctrl-C
 * reaches every process of the foreground group, wrappers such as `npm exec` that pass it on included.
 */
const REPEAT_WINDOW_MS = 500;

/** Exit code after a second signal: the shell's convention for death by a signal, 128 + its number. */
function forcedExitCode(signal: NodeJS.Signals): number {
  return 128 + (constants.signals[signal] ?? 0);
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

/** Runs the command; resolves to the process's exit code. */
export async function main(argv: string[], env: Record<string, string | undefined>): Promise<number> {
  let command: Command;
  try {
    command = parseCommand(argv, env);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`muxwire: ${error.message}\n(muxwire --help shows the usage)\n`);
    return 2;
  }
  switch (command.command) {
    case 'help':
      (command.mistake ? process.stderr : process.stdout).write(command.text);
      return command.mistake ? 2 : 0;
    case 'version':
      process.stdout.write(`${version()}\n`);
      return 0;
    case 'token':
      process.stdout.write(`${newToken()}\n`);
      return 0;
    default:
      break;
  }
  // A reader of the events that goes away (`muxwire ... --json | head`), or the terminal (SIGHUP, then EIO),
  // must not take the tunnel down.
  process.stdout.on('error', () => {});
  process.stderr.on('error', () => {});
  const reporter = new Reporter(command.json);
  const fail = (error: unknown): number => {
    const message =
      error instanceof TunnelError ? error.message : `unexpected failure: ${(error as Error)?.stack ?? String(error)}`;
    reporter.event('fatal', message, { code: (error as { code?: string })?.code });
    return 1;
  };
  let running: { stop(): Promise<void>; abort(): void; done: Promise<void> };
  try {
    if (command.command === 'server') {
      const server = await runServer(command, env, reporter);
      running = { stop: () => server.stop(), abort: () => server.abort(), done: new Promise(() => {}) };
    } else {
      running = await runClient(command, env, reporter);
    }
  } catch (error) {
    return fail(error);
  }
  let first: { signal: NodeJS.Signals; at: number } | undefined;
  const stopped = new Promise<number>((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      const now = performance.now();
      if (first !== undefined) {
        if (signal === first.signal && now - first.at < REPEAT_WINDOW_MS) return;
        const again = signal === first.signal ? `${signal} again` : `${signal} after ${first.signal}`;
        reporter.event('forced', `${again}: exiting without waiting`, { signal });
        // Reset what is still open: the exit alone would close it with a FIN, as if its data were complete.
        running.abort();
        process.exit(forcedExitCode(signal));
      }
      first = { signal, at: now };
      reporter.event('signal', `${signal}: shutting down gracefully (${signal} again to exit at once)`, { signal });
      void running.stop().then(() => resolve(0));
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    // The terminal or ssh session that ran the command went away: as SIGTERM (by default the process would
    // die at once, and the exit close what is open with a FIN, as if its data were complete).
    process.on('SIGHUP', onSignal);
  });
  return Promise.race([
    stopped,
    running.done.then(
      () => 0,
      async (error: unknown) => {
        const code = fail(error);
        await running.stop();
        return code;
      },
    ),
  ]);
}
