/**
 * Runs a Node program in its own process and reports how it ended, with a deadline: a program that hangs is
 * killed and reported as such, never left behind. Used to run the examples, the README's programs and the
 * packed package's smoke test.
 */
import { spawn, type ChildProcess } from 'node:child_process';

/** How a program ended. */
export interface ProgramResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** True if the deadline passed and the program was killed. */
  timedOut: boolean;
  ms: number;
}

/** A running program: `result` settles when it exits (or is killed at the deadline). */
export interface RunningProgram {
  child: ChildProcess;
  result: Promise<ProgramResult>;
  /** Resolves to the first stdout line matching `pattern` (rejects if the program ends first). */
  line(pattern: RegExp): Promise<RegExpMatchArray>;
}

/** Starts `command args` (by default `node`), killing it after `timeoutMs`. */
export function startProgram(
  args: string[],
  options: { timeoutMs: number; cwd?: string; command?: string; env?: NodeJS.ProcessEnv },
): RunningProgram {
  const started = Date.now();
  const child = spawn(options.command ?? process.execPath, args, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  let timedOut = false;
  const watchers: { pattern: RegExp; resolve(m: RegExpMatchArray): void }[] = [];
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    for (const watcher of [...watchers]) {
      const match = stdout.match(watcher.pattern);
      if (match !== null) {
        watchers.splice(watchers.indexOf(watcher), 1);
        watcher.resolve(match);
      }
    }
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, options.timeoutMs);
  const result = new Promise<ProgramResult>((resolve, reject) => {
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut, ms: Date.now() - started });
    });
  });
  return {
    child,
    result,
    line(pattern) {
      const match = stdout.match(pattern);
      if (match !== null) return Promise.resolve(match);
      return new Promise((resolve, reject) => {
        watchers.push({ pattern, resolve });
        result.then((r) => reject(new Error(`program ended before printing ${pattern}: ${describe(r)}`)), reject);
      });
    },
  };
}

/** Runs a program to its end. */
export function runProgram(
  args: string[],
  options: { timeoutMs: number; cwd?: string; command?: string; env?: NodeJS.ProcessEnv },
): Promise<ProgramResult> {
  return startProgram(args, options).result;
}

/** One line for an assertion message: how the program ended and what it printed. */
export function describe(result: ProgramResult): string {
  const how = result.timedOut ? `hung (killed after ${result.ms} ms)` : `exited with ${result.code ?? result.signal}`;
  return `${how}\n--- stdout\n${result.stdout}\n--- stderr\n${result.stderr}`;
}
