/**
 * The README's "Tunnel command" section, run as written: its two shell blocks ("terminals") in `sh`, in a
 * fresh directory that sees the build as `dist/`, with only the port numbers (7000, 8000, 8080) swapped
 * for free ones so that the test cannot collide with anything else on the machine.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync, statSync, symlinkSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, requirePrograms, workDir } from './harness.js';

const README = fileURLToPath(new URL('../../../README.md', import.meta.url));
const DIST = fileURLToPath(new URL('../../', import.meta.url));

/** The fenced `sh` blocks of the README section headed `heading`. */
function shellBlocks(markdown: string, heading: string): string[] {
  const start = markdown.indexOf(`\n## ${heading}\n`);
  assert.ok(start >= 0, `README has a "## ${heading}" section`);
  const end = markdown.indexOf('\n## ', start + 1);
  const section = markdown.slice(start, end < 0 ? undefined : end);
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
}

function connectable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Stops a terminal: its shell was started as a process group leader, so the group is its own pid. */
async function closeTerminal(child: ChildProcess): Promise<void> {
  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    try {
      process.kill(-child.pid!, signal);
    } catch {
      return; // the group is gone
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

if (requirePrograms('README tunnel section', ['curl'], 'curl')) {
  test(
    'the README tunnel section works as written: two terminals, and curl prints the answer',
    { timeout: 60_000 },
    async () => {
      const blocks = shellBlocks(readFileSync(README, 'utf8'), 'Tunnel command');
      assert.equal(blocks.length, 2, 'two terminals');
      const ports = new Map<string, string>([
        ['7000', String(await freePort())],
        ['8000', String(await freePort())],
        ['8080', String(await freePort())],
      ]);
      const [terminal1, terminal2] = blocks.map((block) =>
        block.replace(/\b(7000|8000|8080)\b/g, (port) => ports.get(port)!),
      );
      const work = workDir();
      symlinkSync(DIST, join(work.dir, 'dist'));
      const terminals: ChildProcess[] = [];
      try {
        // Under the usual umask, which would leave a file every local user can read.
        const first = spawn('sh', ['-c', `umask 022\n${terminal1!}`], {
          cwd: work.dir,
          detached: true,
          stdio: 'ignore',
        });
        terminals.push(first);
        const serverPort = Number(ports.get('7000'));
        const deadline = performance.now() + 15_000;
        while (!(await connectable(serverPort))) {
          assert.ok(performance.now() < deadline, 'the server of terminal 1 listens');
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        assert.equal(
          statSync(join(work.dir, 'tunnel.token')).mode & 0o077,
          0,
          'the token file is readable by its owner only',
        );
        const second = spawn('sh', ['-c', terminal2!], {
          cwd: work.dir,
          detached: true,
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        terminals.push(second);
        let output = '';
        second.stdout.setEncoding('utf8').on('data', (chunk: string) => {
          output += chunk;
        });
        second.stderr.setEncoding('utf8').on('data', (chunk: string) => {
          output += chunk;
        });
        const answer = await new Promise<string>((resolve, reject) => {
          const timer = setTimeout(
            () => reject(new Error(`no answer within 20 s; terminal 2 printed:\n${output}`)),
            20_000,
          );
          const check = (): void => {
            if (output.includes('hello through muxwire\n')) {
              clearTimeout(timer);
              resolve(output);
            }
          };
          second.stdout.on('data', check);
          second.stderr.on('data', check);
        });
        assert.match(answer, /hello through muxwire/);
      } finally {
        for (const terminal of terminals) await closeTerminal(terminal);
        work.remove();
      }
    },
  );
}
