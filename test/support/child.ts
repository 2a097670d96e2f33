/**
 * Scenarios run in a child process, for what a test cannot check in its own process: that the process exits
 * by itself (nothing left holding it open), and bugs that crash the process. It does nothing unless
 * MUXWIRE_CHILD names a scenario (the test runner also loads every file under test/, as a test file).
 */
import { multiplexedClient, multiplexedServer } from '../../src/index.js';
import { memoryPipe } from '../helpers.js';
import { runFaultTrial } from './fault-trial.js';

const scenarios: Record<string, () => Promise<void>> = {
  /** Fault trials, then return: the process must exit on its own. */
  async 'fault-trials'() {
    const first = Number(process.env.MUXWIRE_CHILD_SEED ?? 1);
    const count = Number(process.env.MUXWIRE_CHILD_TRIALS ?? 3);
    const problems: string[] = [];
    for (let seed = first; seed < first + count; seed++) {
      const outcome = await runFaultTrial(seed);
      problems.push(...outcome.problems.map((p) => `seed ${seed}: ${p}`));
    }
    console.log(JSON.stringify({ trials: count, problems }));
  },

  /** A channel with a write pending and no 'error' listener; the peer resets it. */
  async 'unobserved-reset-with-pending-write'() {
    const [a, b] = memoryPipe();
    const client = multiplexedClient(a, { keepAliveInterval: 0 });
    const server = multiplexedServer(b, { keepAliveInterval: 0 });
    let inbound: import('../../src/index.js').Channel | undefined;
    server.on('channel', (channel) => {
      inbound = channel;
    });
    const channel = client.dial();
    channel.write(Buffer.alloc(1024 * 1024)); // beyond the window: most of it stays queued
    await new Promise((resolve) => setTimeout(resolve, 50));
    inbound?.destroy();
    await new Promise((resolve) => setTimeout(resolve, 50));
    console.log(JSON.stringify({ closed: channel.closed, failure: channel.failure?.constructor.name ?? null }));
    client.destroy();
    server.destroy();
  },

  /** A channel with a write pending and no 'error' listener; the session's transport goes away. */
  async 'unobserved-session-failure-with-pending-write'() {
    const [a, b] = memoryPipe();
    const client = multiplexedClient(a, { keepAliveInterval: 0 });
    const server = multiplexedServer(b, { keepAliveInterval: 0 });
    server.on('channel', () => {});
    const channel = client.dial();
    channel.write(Buffer.alloc(1024 * 1024));
    await new Promise((resolve) => setTimeout(resolve, 50));
    server.destroy();
    await new Promise((resolve) => setTimeout(resolve, 50));
    console.log(JSON.stringify({ closed: channel.closed, failure: channel.failure?.constructor.name ?? null }));
    client.destroy();
  },
};

const name = process.env.MUXWIRE_CHILD;
if (name !== undefined && name !== '') {
  const scenario = scenarios[name];
  if (scenario === undefined) throw new Error(`unknown child scenario ${name}`);
  await scenario();
}

/** Runs a scenario in a child process; resolves to its exit code, output and how long it took to exit. */
export async function runChild(
  scenario: string,
  env: Record<string, string> = {},
  timeoutMs = 30_000,
): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; ms: number }> {
  const { spawn } = await import('node:child_process');
  const { fileURLToPath } = await import('node:url');
  const started = performance.now();
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url)], {
    env: { ...process.env, ...env, MUXWIRE_CHILD: scenario },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => {
    child.on('close', (c, s) => resolve([c, s]));
  });
  clearTimeout(timer);
  return { code, signal, stdout, stderr, ms: performance.now() - started };
}
