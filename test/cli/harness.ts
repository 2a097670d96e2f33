/**
 * Runs the real `muxwire` command (dist/src/cli.js) in child processes with `--json` and waits on its
 * events; finds and runs the Debian programs the tunnel tests drive (curl, redis, iperf3); a small HTTP
 * target that counts its connections. Every wait is bounded; every process is killed at the end.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import assert from 'node:assert/strict';

/** The compiled command, from dist/test/cli/. */
export const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));

/** One JSON event of the command. */
export interface CliEvent {
  event: string;
  message: string;
  code?: string;
  port?: number;
  [key: string]: unknown;
}

/** A running `muxwire` process. */
export class Cli {
  readonly child: ChildProcess;
  readonly events: CliEvent[] = [];
  stderr = '';
  readonly exited: Promise<number | null>;
  readonly #watchers = new Set<() => void>();

  constructor(args: string[], env: Record<string, string> = {}) {
    this.child = spawn(process.execPath, [CLI, ...args, '--json'], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let pending = '';
    this.child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      pending += chunk;
      let newline: number;
      while ((newline = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, newline);
        pending = pending.slice(newline + 1);
        try {
          this.events.push(JSON.parse(line) as CliEvent);
        } catch {
          this.events.push({ event: 'unparsed', message: line });
        }
        for (const watcher of this.#watchers) watcher();
      }
    });
    this.child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderr += chunk;
    });
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code) => {
        for (const watcher of this.#watchers) watcher();
        resolve(code);
      });
    });
  }

  /** Resolves to the first event (already seen or coming) that `match` accepts; rejects after `timeoutMs`. */
  waitFor(match: string | ((event: CliEvent) => boolean), timeoutMs = 10_000): Promise<CliEvent> {
    const accept = typeof match === 'string' ? (e: CliEvent) => e.event === match : match;
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const found = this.events.find(accept);
        if (found !== undefined) {
          done();
          resolve(found);
        } else if (this.child.exitCode !== null) {
          done();
          reject(
            new Error(`muxwire exited (${this.child.exitCode}) before ${String(match)}; events:\n${this.describe()}`),
          );
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`no ${String(match)} within ${timeoutMs} ms; events:\n${this.describe()}`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.#watchers.delete(check);
      };
      this.#watchers.add(check);
      check();
    });
  }

  /** The events so far, one line each, for failure messages. */
  describe(): string {
    return (
      this.events.map((e) => `  ${e.event}: ${e.message}`).join('\n') +
      (this.stderr === '' ? '' : `\nstderr: ${this.stderr}`)
    );
  }

  /** Sends `signal` and waits for the exit (SIGKILL after `timeoutMs`). */
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 10_000): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }
}

/** A temporary directory with a token file; `remove()` deletes it. */
export function workDir(): {
  dir: string;
  tokenFile: string;
  token: string;
  /** Writes a file in the directory (`mode`: its permissions, default by the umask) and gives its path. */
  write(name: string, text: string, mode?: number): string;
  remove(): void;
} {
  const dir = mkdtempSync(join(tmpdir(), 'muxwire-cli-'));
  const token = 'test-token-0123456789abcdef';
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
  return {
    dir,
    tokenFile,
    token,
    write(name, text, mode) {
      const path = join(dir, name);
      writeFileSync(path, text, { mode });
      return path;
    },
    remove() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Starts a server process on a free loopback port and waits until it listens. */
export async function startServer(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ cli: Cli; port: number }> {
  const cli = new Cli(['server', '--listen', '127.0.0.1:0', ...args], env);
  const listening = await cli.waitFor('listening');
  return { cli, port: listening.port! };
}

/** Starts a client process and waits for its session (and its -L listeners); port 0: `args` say where (--ws). */
export async function startClient(serverPort: number, args: string[], env: Record<string, string> = {}): Promise<Cli> {
  const cli = new Cli(['client', ...(serverPort === 0 ? [] : ['--server', `127.0.0.1:${serverPort}`]), ...args], env);
  await cli.waitFor('session-up');
  return cli;
}

/** The ports a client's -L listeners got, in order. */
export function localPorts(cli: Cli): number[] {
  return cli.events.filter((e) => e.event === 'local-listening').map((e) => e.port!);
}

/** An HTTP server on a free loopback port that answers `body` and counts the TCP connections it gets. */
export async function httpTarget(
  body = 'hello through the tunnel\n',
): Promise<{ port: number; connections(): number; close(): Promise<void> }> {
  let connections = 0;
  const server = http.createServer((request, response) => {
    response.end(body);
  });
  server.on('connection', () => {
    connections += 1;
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    connections: () => connections,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * An echo server on a free loopback port: every connection gets back what it sends, and ends when its peer does
 * (half-close kept). `close()` destroys the connections still open and closes the server.
 */
export async function echoTarget(): Promise<{
  port: number;
  server: net.Server;
  sockets: Set<net.Socket>;
  close(): void;
}> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
    socket.pipe(socket);
  });
  await new Promise<void>((resolve) => server.listen({ port: 0, host: '127.0.0.1', backlog: 2048 }, resolve));
  return {
    port: (server.address() as AddressInfo).port,
    server,
    sockets,
    close() {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  };
}

/** A TCP port free at the time of asking (for programs that cannot take port 0). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** True when `command` is an executable on PATH. */
export function onPath(command: string): boolean {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    try {
      accessSync(join(dir, command), constants.X_OK);
      return true;
    } catch {
      // not in this directory
    }
  }
  return false;
}

/**
 * The programs a suite needs: when one is missing, the suite is one skipped test with a line saying what to
 * install, except on CI (CI=true), where it is a failing test, since .ci/run installs them.
 */
export function requirePrograms(suite: string, programs: string[], packages: string): boolean {
  const missing = programs.filter((p) => !onPath(p));
  if (missing.length === 0) return true;
  const note = `${missing.join(', ')} missing: apt-get install -y ${packages}`;
  if (process.env.CI === 'true') {
    test(`${suite}: prerequisites`, () => assert.fail(`${note} (.ci/run installs it)`));
  } else {
    test(suite, { skip: note }, () => {});
  }
  return false;
}

/** Runs a program to its end; resolves to its output, rejects on a non-zero exit or after `timeoutMs`. */
export function run(command: string, args: string[], timeoutMs = 30_000): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(
      command,
      args,
      { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const failure: Error | null = error === null ? null : Object.assign(error, { stdout, stderr });
        if (failure !== null) reject(failure);
        else resolve({ stdout, stderr });
      },
    );
  });
}

/** `curl` of `url`, bounded in time; resolves to the body. */
export async function curl(url: string, timeoutSeconds = 10): Promise<string> {
  const { stdout } = await run('curl', ['-sS', '--max-time', String(timeoutSeconds), url], (timeoutSeconds + 5) * 1000);
  return stdout;
}

/** `curl` that is expected to fail: resolves to curl's exit code (it rejects if curl succeeded). */
export async function curlFails(url: string, timeoutSeconds = 10): Promise<number> {
  try {
    await run('curl', ['-sS', '--max-time', String(timeoutSeconds), url], (timeoutSeconds + 5) * 1000);
  } catch (error) {
    return (error as { code: number }).code;
  }
  throw new Error(`curl ${url} succeeded where it should have failed`);
}

/** Starts a program and resolves once `port` accepts connections (bounded by `timeoutMs`). */
export async function startProgram(
  command: string,
  args: string[],
  port: number,
  timeoutMs = 10_000,
): Promise<ChildProcess> {
  const child = spawn(command, args, { stdio: 'ignore' });
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${command} exited with ${child.exitCode}`);
    const up = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (up) return child;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  child.kill('SIGKILL');
  throw new Error(`${command} did not listen on ${port} within ${timeoutMs} ms`);
}

export async function stopProgram(child: ChildProcess | undefined): Promise<void> {
  if (child?.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGKILL');
  await once(child, 'exit');
}
