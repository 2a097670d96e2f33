/**
 * Runs the Go interop peers: the hashicorp/yamux peer (test/interop/go, see README-go.md) and the peer on the
 * original alecthomas/multiplex (test/interop/multiplex-go, see README.md). Builds each with its build.sh,
 * spawns one run per scenario and parses its LISTENING, RESULT and other lines.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import { delimiter, dirname, join, resolve } from 'node:path';
import type net from 'node:net';
import { fileURLToPath } from 'node:url';
import { within } from './length-prefixed.js';

export const INSTALL_HINT = 'apt-get install -y golang-go golang-github-hashicorp-yamux-dev';
/** What the peer on the original multiplex needs besides ../shared: Go and the tomb package it imports. */
export const MULTIPLEX_INSTALL_HINT = 'apt-get install -y golang-go golang-gopkg-tomb.v1-dev';
/**
 * Where Debian's golang-github-hashicorp-yamux-dev installs the library's source: Debian packages Go libraries
 * for GOPATH mode under /usr/share/gocode, and build.sh builds against exactly that tree (there is no module
 * proxy). The peer is never built against a copy from anywhere else.
 */
const DEBIAN_GOCODE = '/usr/share/gocode';
const YAMUX_SOURCE = `${DEBIAN_GOCODE}/src/github.com/hashicorp/yamux/session.go`;
const TOMB_SOURCE = `${DEBIAN_GOCODE}/src/gopkg.in/tomb.v1/tomb.go`;
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
  { kind: 'ready'; path: string } | { kind: 'missing'; what: string } | { kind: 'broken'; message: string };

/** Builds the yamux peer (build.sh skips the build when the binary is up to date). */
export function prepareGoPeer(): Promise<GoPeerStatus> {
  const missing = [
    !onPath('go') && 'the go command (Debian package golang-go) on PATH',
    !existsSync(YAMUX_SOURCE) &&
      `hashicorp/yamux from the Debian package golang-github-hashicorp-yamux-dev (looked for ${YAMUX_SOURCE})`,
  ].filter((m): m is string => typeof m === 'string');
  return buildPeer(join(repoRoot(), 'test', 'interop', 'go', 'build.sh'), missing);
}

/** The original alecthomas/multiplex's source, beside the repository (its README says how it is used). */
export function multiplexOriginalDir(): string {
  return process.env.MULTIPLEX_ORIGINAL ?? resolve(repoRoot(), '..', 'shared', 'peers', 'alecthomas-multiplex');
}

/** Builds the peer on the original alecthomas/multiplex from ../shared (skipped when up to date). */
export function prepareMultiplexPeer(): Promise<GoPeerStatus> {
  const missing = [
    !onPath('go') && 'the go command (Debian package golang-go) on PATH',
    !existsSync(TOMB_SOURCE) &&
      `gopkg.in/tomb.v1 from the Debian package golang-gopkg-tomb.v1-dev (looked for ${TOMB_SOURCE})`,
    !existsSync(join(multiplexOriginalDir(), 'multiplex.go')) && `the original's source (${multiplexOriginalDir()})`,
  ].filter((m): m is string => typeof m === 'string');
  return buildPeer(join(repoRoot(), 'test', 'interop', 'multiplex-go', 'build.sh'), missing);
}

function buildPeer(script: string, missing: string[]): Promise<GoPeerStatus> {
  if (missing.length > 0) return Promise.resolve({ kind: 'missing', what: missing.join(' and ') });
  return new Promise((resolvePeer) => {
    execFile('/bin/sh', [script], { timeout: BUILD_TIMEOUT_MS, killSignal: 'SIGKILL' }, (error, stdout, stderr) => {
      const path = stdout.trim().split('\n').pop() ?? '';
      if (error === null && path !== '' && existsSync(path)) {
        resolvePeer({ kind: 'ready', path });
      } else if (/^build\.sh: .*not found/m.test(stderr)) {
        resolvePeer({ kind: 'missing', what: stderr.trim().replace(/\s+/g, ' ') });
      } else {
        resolvePeer({ kind: 'broken', message: `${script} failed (${error?.message ?? 'no binary'}):\n${stderr}` });
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
    fields[match[1]!] = value.startsWith('"') ? (JSON.parse(value) as string) : value;
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
  private exited = false;
  private stdout = '';
  private stderr = '';
  private killTimer: ReturnType<typeof setTimeout>;
  private lineWaiters: (() => void)[] = [];

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
      for (const wake of this.lineWaiters.splice(0)) wake();
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
        this.exited = true;
        for (const wake of this.lineWaiters.splice(0)) wake();
        rejectPort(new Error(`the Go peer exited before listening:\n${this.output()}`));
        const line = this.stdout
          .split('\n')
          .filter((l) => l.startsWith('RESULT '))
          .pop();
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

  /**
   * The first complete stdout line that starts with `keyword` (at once if it was printed already); rejects if
   * the process exits without printing one.
   */
  async line(keyword: string): Promise<string> {
    for (;;) {
      const found = this.lines(keyword)[0];
      if (found !== undefined) return found;
      if (this.exited) throw new Error(`the Go peer exited without a ${keyword} line:\n${this.output()}`);
      await new Promise<void>((wake) => this.lineWaiters.push(wake));
    }
  }

  /** The peer's complete stdout lines that start with `keyword`. */
  lines(keyword: string): string[] {
    return this.stdout
      .split('\n')
      .slice(0, -1)
      .filter((l) => l.startsWith(`${keyword} `) || l === keyword);
  }

  kill(): void {
    clearTimeout(this.killTimer);
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}

/** How a test opens its muxwire session toward a Go peer, in either role. */
export interface SessionOpener<S> {
  /** muxwire as client: connect to the peer listening on `port`. */
  client(port: number): Promise<S>;
  /** muxwire as server: a TCP server (not yet listening) that hands its first session to `accepted`. */
  server(accepted: (session: S) => void): net.Server;
}

/** A muxwire session facing a running Go peer; the caller destroys the session, closes `server`, kills `go`. */
export interface GoPeerSession<S> {
  session: S | undefined;
  go: GoPeer | undefined;
  server: net.Server | undefined;
}

/**
 * Starts the Go peer at `peerPath` and opens a muxwire session with it on 127.0.0.1: with role 'client' the
 * peer listens (`-mode listen`) and muxwire connects; with 'server' muxwire listens and the peer dials. Fills
 * `into` as it goes, so that the caller can clean up whatever was started even when this throws.
 */
export async function startGoPeerSession<S>(
  into: GoPeerSession<S>,
  peerPath: string,
  role: 'client' | 'server',
  goArgs: string[],
  runMs: number,
  open: SessionOpener<S>,
): Promise<{ session: S; go: GoPeer }> {
  if (role === 'client') {
    const go = new GoPeer(peerPath, ['-mode', 'listen', '-addr', '127.0.0.1:0', ...goArgs], runMs);
    into.go = go;
    const port = await within(go.port, 10_000, 'the Go peer to listen');
    const session = await within(open.client(port), 5_000, 'connecting to the Go peer');
    into.session = session;
    return { session, go };
  }
  let accepted!: (session: S) => void;
  const arrived = new Promise<S>((res) => {
    accepted = res;
  });
  const server = open.server((s) => accepted(s));
  into.server = server;
  await new Promise<void>((res, rej) => {
    server.once('error', rej);
    server.listen(0, '127.0.0.1', () => res());
  });
  const port = (server.address() as net.AddressInfo).port;
  const go = new GoPeer(peerPath, ['-mode', 'dial', '-addr', `127.0.0.1:${port}`, ...goArgs], runMs);
  into.go = go;
  const exitedFirst = go.result.then((r) => {
    throw new Error(`the Go peer finished before connecting: ${r.line}`);
  });
  const session = await within(Promise.race([arrived, exitedFirst]), 10_000, 'the Go peer to connect');
  into.session = session;
  server.close();
  return { session, go };
}
