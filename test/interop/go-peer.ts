/**
 * Runs the Go hashicorp/yamux peer (test/interop/go, see README-go.md): builds it with build.sh, spawns one
 * run per scenario and parses its LISTENING and RESULT lines.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const INSTALL_HINT = 'apt-get install -y golang-go golang-github-hashicorp-yamux-dev';
/**
 * Where Debian's golang-github-hashicorp-yamux-dev installs the library's source: Debian packages Go libraries
 * for GOPATH mode under /usr/share/gocode, and build.sh builds against exactly that tree (there is no module
 * proxy). The peer is never built against a copy from anywhere else.
 */
const DEBIAN_GOCODE = '/usr/share/gocode';
const YAMUX_SOURCE = `${DEBIAN_GOCODE}/src/github.com/hashicorp/yamux/session.go`;
const BUILD_TIMEOUT_MS = 180_000;

/** The repository root, from dist/test/interop/ (compiled) or test/interop/ (source). */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'test', 'interop', 'go', 'build.sh'))) return dir;
    dir = resolve(dir, '..');
  }
  throw new Error('cannot find the repository root (test/interop/go/build.sh)');
}

function onPath(command: string): boolean {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    try {
      accessSync(join(dir, command), constants.X_OK);
      return true;
    } catch {
      // not here
    }
  }
  return false;
}

export type GoPeerStatus =
  | { kind: 'ready'; path: string }
  | { kind: 'missing'; what: string }
  | { kind: 'broken'; message: string };

/** Builds the peer (build.sh skips the build when the binary is up to date). */
export function prepareGoPeer(): Promise<GoPeerStatus> {
  const missing = [
    !onPath('go') && 'the go command (Debian package golang-go) on PATH',
    !existsSync(YAMUX_SOURCE)
      && `hashicorp/yamux from the Debian package golang-github-hashicorp-yamux-dev (looked for ${YAMUX_SOURCE})`,
  ]
    .filter((m): m is string => typeof m === 'string');
  if (missing.length > 0) return Promise.resolve({ kind: 'missing', what: missing.join(' and ') });
  const script = join(repoRoot(), 'test', 'interop', 'go', 'build.sh');
  return new Promise((resolvePeer) => {
    execFile('/bin/sh', [script], { timeout: BUILD_TIMEOUT_MS, killSignal: 'SIGKILL' }, (error, stdout, stderr) => {
      const path = stdout.trim().split('\n').pop() ?? '';
      if (error === null && path !== '' && existsSync(path)) {
        resolvePeer({ kind: 'ready', path });
      } else if (/not found; install it with/.test(stderr)) {
        resolvePeer({ kind: 'missing', what: stderr.trim().replace(/\s+/g, ' ') });
      } else {
        resolvePeer({ kind: 'broken', message: `build.sh failed (${error?.message ?? 'no binary'}):\n${stderr}` });
      }
    });
  });
}

/** The peer's RESULT line, parsed. */
export interface GoResult {
  ok: boolean;
  /** The failure reason (`protocol-error`, `timeout`...), undefined when ok. */
  reason: string | undefined;
  fields: Record<string, string>;
  line: string;
  exitCode: number | null;
}

function parseResult(line: string, exitCode: number | null): GoResult {
  const words = line.split(' ');
  const ok = words[1] === 'ok';
  const reason = ok ? undefined : words[2];
  const fields: Record<string, string> = {};
  for (const match of line.matchAll(/([a-z_0-9]+)=("(?:[^"\\]|\\.)*"|\S*)/g)) {
    const value = match[2]!;
    fields[match[1]!] = value.startsWith('"') ? JSON.parse(value) as string : value;
  }
  return { ok, reason, fields, line, exitCode };
}

/** One running peer process. */
export class GoPeer {
  readonly child: ChildProcess;
  /** The port it listens on (listen mode). */
  readonly port: Promise<number>;
  /** Settles when the process exits: its RESULT line (rejects if it printed none). */
  readonly result: Promise<GoResult>;
  private stdout = '';
  private stderr = '';
  private killTimer: ReturnType<typeof setTimeout>;

  /** `args` are the peer's flags; the run is bounded by `-timeout` and, as a last resort, a SIGKILL. */
  constructor(path: string, args: string[], timeoutMs = 20_000) {
    this.child = spawn(path, ['-timeout', `${timeoutMs}ms`, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.killTimer = setTimeout(() => this.kill(), timeoutMs + 8_000);
    let resolvePort!: (port: number) => void;
    let rejectPort!: (error: Error) => void;
    this.port = new Promise((res, rej) => {
      resolvePort = res;
      rejectPort = rej;
    });
    this.port.catch(() => {});
    this.child.stdout!.setEncoding('utf8');
    this.child.stderr!.setEncoding('utf8');
    this.child.stdout!.on('data', (text: string) => {
      this.stdout += text;
      const match = /^LISTENING (\d+)$/m.exec(this.stdout);
      if (match) resolvePort(Number(match[1]));
    });
    this.child.stderr!.on('data', (text: string) => {
      this.stderr += text;
    });
    this.result = new Promise<GoResult>((res, rej) => {
      this.child.on('error', (error) => {
        rejectPort(error);
        rej(error);
      });
      this.child.on('close', (code) => {
        clearTimeout(this.killTimer);
        rejectPort(new Error(`the Go peer exited before listening:\n${this.output()}`));
        const line = this.stdout.split('\n').filter((l) => l.startsWith('RESULT ')).pop();
        if (line === undefined) rej(new Error(`the Go peer printed no RESULT line (exit ${code}):\n${this.output()}`));
        else res(parseResult(line, code));
      });
    });
    this.result.catch(() => {});
  }

  /** The tail of what the peer printed, for failure messages. */
  output(): string {
    const tail = (s: string): string => s.split('\n').slice(-25).join('\n');
    return `--- stdout\n${tail(this.stdout)}\n--- stderr\n${tail(this.stderr)}`;
  }

  /** The peer's stdout lines that start with `keyword`. */
  lines(keyword: string): string[] {
    return this.stdout.split('\n').filter((l) => l.startsWith(`${keyword} `));
  }

  kill(): void {
    clearTimeout(this.killTimer);
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}
