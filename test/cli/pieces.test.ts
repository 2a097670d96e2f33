/**
 * The command's pure pieces, without processes: argument parsing (forward specs, addresses, allow patterns,
 * the token never on argv), token checks, the control protocol's framing and validation (bad input gets a
 * typed error), the reconnect backoff, and the session transport's write coalescing (on a loopback TCP pair);
 * and, in a child process, the exit status of the command given no command or `--help`.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Duplex, PassThrough } from 'node:stream';
import {
  UsageError,
  allowed,
  parseAddress,
  parseAllow,
  parseCommand,
  parseFingerprint,
  parseForward,
  USAGE,
} from '../../src/cli/args.js';
import { MAX_TOKEN_FILE_BYTES, loadToken, newToken, tokensMatch } from '../../src/cli/auth.js';
import { DIRECT_WRITE_BYTES, coalescingTransport, joinUpTo } from '../../src/cli/coalesce.js';
import {
  MAX_MESSAGE_BYTES,
  WS_JOIN_BYTES,
  WS_MAX_MESSAGE_BYTES,
  encode,
  readMessage,
  validate,
} from '../../src/cli/protocol.js';
import { RepeatedEvents, RepeatedReport } from '../../src/cli/repeats.js';
import { DEMAND_INTERVAL_MS, Reconnector, backoffDelay, sessionGone } from '../../src/cli/reconnect.js';
import { HandshakeSlots, addressOf, sourceOf } from '../../src/cli/handshake-slots.js';
import { listenTunnel, requestPath } from '../../src/cli/transport.js';
import type { ServerConfig } from '../../src/cli/args.js';
import { FrameType } from '../../src/core/frame.js';
import { multiplexedClient } from '../../src/index.js';
import { frame, sessionPair, tcpPair } from '../helpers.js';
import { Reporter, Traffic, escapeControls } from '../../src/cli/status.js';

describe('command line', () => {
  test('-L/-R specs: PORT:HOST:HOSTPORT binds loopback, BIND:PORT:HOST:HOSTPORT and IPv6 in brackets', () => {
    assert.deepEqual(parseForward('8080:example.org:80', 'L'), {
      kind: 'L',
      bind: '127.0.0.1',
      port: 8080,
      host: 'example.org',
      hostPort: 80,
      text: '8080:example.org:80',
    });
    // As ssh: '*' or an empty bind address is every interface.
    assert.equal(parseForward('*:8080:example.org:80', 'L').bind, '0.0.0.0');
    assert.equal(parseForward(':8080:example.org:80', 'R').bind, '0.0.0.0');
    const v6 = parseForward('[::1]:0:[fe80::1]:443', 'R');
    assert.equal(v6.bind, '::1');
    assert.equal(v6.port, 0);
    assert.equal(v6.host, 'fe80::1');
    assert.equal(v6.hostPort, 443);
    for (const bad of [
      '8080',
      '8080:host',
      'x:host:80',
      '8080:host:70000',
      '0:host:0',
      '1:2:3:4:5',
      '8080::80',
      '[::1:80:h:1',
    ]) {
      assert.throws(() => parseForward(bad, 'L'), UsageError, bad);
    }
  });

  test('addresses need HOST:PORT and allow patterns take * for either part', () => {
    assert.deepEqual(parseAddress('[::1]:7000', '--listen'), { host: '::1', port: 7000 });
    assert.throws(() => parseAddress('7000', '--listen'), UsageError);
    const patterns = [
      parseAllow('127.0.0.1:*', '--allow'),
      parseAllow('*:6379', '--allow'),
      parseAllow('DB.local:5432', '--allow'),
    ];
    assert.ok(allowed(patterns, '127.0.0.1', 1));
    assert.ok(allowed(patterns, 'cache', 6379));
    assert.ok(allowed(patterns, 'db.local', 5432));
    assert.ok(!allowed(patterns, 'db.local', 5433));
    assert.ok(!allowed(patterns, 'localhost', 80), 'names are not resolved: localhost is not 127.0.0.1');
    assert.ok(!allowed([], '127.0.0.1', 80), 'nothing is allowed by default');
  });

  test('a client has at most 256 forwards (what the handshake announces): more is a usage error', () => {
    const forwards = (n: number): string[] => Array.from({ length: n }, (_, i) => ['-L', `${i + 1}:h:2`]).flat();
    const env = { MUXWIRE_TOKEN: 'x' };
    assert.equal(parseCommand(['client', '--server', 'h:1', ...forwards(256)], env).command, 'client');
    assert.throws(
      () => parseCommand(['client', '--server', 'h:1', ...forwards(257)], env),
      (error: Error) =>
        error instanceof UsageError && error.message.includes('at most 256 -L and -R forwards, not 257'),
    );
  });

  test('the token is refused on argv, and one is required from a file or MUXWIRE_TOKEN', () => {
    assert.throws(
      () => parseCommand(['client', '--server', 'h:1', '-L', '1:h:2', '--token', 'secret'], {}),
      /never taken from the command line/,
    );
    assert.throws(
      () => parseCommand(['client', '--server', 'h:1', '-L', '1:h:2', '--token=secret'], {}),
      /never taken from the command line/,
    );
    assert.throws(() => parseCommand(['client', '--server', 'h:1', '-L', '1:h:2'], {}), /a token is needed/);
    const fromEnv = parseCommand(['client', '--server', 'h:1', '-L', '1:h:2'], { MUXWIRE_TOKEN: 'x' });
    assert.equal(fromEnv.command, 'client');
    assert.deepEqual((fromEnv as { token: unknown }).token, { kind: 'env', name: 'MUXWIRE_TOKEN' });
  });

  test('--reconnect-max below the first wait between attempts (100 ms) is a usage error naming the minimum', () => {
    const env = { MUXWIRE_TOKEN: 'x' };
    const client = (max: string) =>
      parseCommand(['client', '--server', 'h:1', '-L', '1:h:2', '--reconnect-max', max], env);
    for (const max of ['0', '99']) {
      assert.throws(() => client(max), {
        name: 'UsageError',
        message: `--reconnect-max must be at least 100 (ms, the first wait between attempts), not ${max}`,
      });
    }
    assert.equal((client('100') as { reconnectMax: number }).reconnectMax, 100);
    assert.equal((client('60000') as { reconnectMax: number }).reconnectMax, 60000);
  });

  test('options of the other subcommand, unknown options and half a TLS pair are usage errors', () => {
    const env = { MUXWIRE_TOKEN: 'x' };
    // Named in both forms, whichever the user typed.
    for (const [flag, both] of [
      ['-L', '-L/--local'],
      ['--local', '-L/--local'],
      ['-R', '-R/--remote'],
    ]) {
      assert.throws(() => parseCommand(['server', '--listen', 'h:1', flag!, '1:h:2'], env), {
        message: `${both} is not an option of 'server'`,
      });
    }
    assert.throws(() => parseCommand(['server', '--listen', 'h:1', '--retries', '3'], env), {
      message: "--retries is not an option of 'server'",
    });
    assert.throws(
      () => parseCommand(['client', '--server', 'h:1', '-L', '1:h:2', '--allow', 'h:1'], env),
      /not an option of 'client'/,
    );
    assert.throws(() => parseCommand(['server', '--listen', 'h:1', '--tls-cert', 'c'], env), /go together/);
    assert.throws(() => parseCommand(['client', '--server', 'h:1', '-L', '1:h:2', '--ca', 'f'], env), /need --tls/);
    assert.throws(() => parseCommand(['server', '--listen', 'h:1', '--bogus'], env), UsageError);
    assert.throws(() => parseCommand(['client', '--server', 'h:1'], env), /at least one -L or -R/);
    assert.deepEqual(
      [parseCommand([], {}), parseCommand(['--help'], {})].map((c) => c.command === 'help' && c.mistake),
      [true, false],
      'no command is a usage mistake; --help is not',
    );
  });

  test('the command with no command prints the usage on stderr and exits 2; with --help, on stdout and exits 0', async () => {
    const cli = new URL('../../src/cli.js', import.meta.url).pathname;
    const runCli = (args: string[]) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        const child = execFile(process.execPath, [cli, ...args], { timeout: 20_000 }, (_error, stdout, stderr) =>
          resolve({ code: child.exitCode, stdout, stderr }),
        );
      });
    const [bare, help] = await Promise.all([runCli([]), runCli(['--help'])]);
    assert.deepEqual([bare.code, bare.stdout, bare.stderr], [2, '', USAGE]);
    assert.deepEqual([help.code, help.stdout, help.stderr], [0, USAGE, '']);
  });

  test('--max-channels: a server option (default 4,096, from 1 to 65,535), listed by --help', () => {
    const env = { MUXWIRE_TOKEN: 'x' };
    const server = (...args: string[]): { maxChannels: number } =>
      parseCommand(['server', '--listen', 'h:1', ...args], env) as unknown as { maxChannels: number };
    assert.equal(server().maxChannels, 4096);
    assert.equal(server('--max-channels', '5').maxChannels, 5);
    for (const bad of ['0', '65536', 'x']) assert.throws(() => server('--max-channels', bad), UsageError, bad);
    assert.throws(() => parseCommand(['client', '--server', 'h:1', '-L', '1:h:2', '--max-channels', '5'], env), {
      message: "--max-channels is not an option of 'client'",
    });
    assert.match(USAGE, /\[--max-channels N\]/);
    assert.match(
      USAGE,
      /--max-channels N {9}most forwarded connections a client may have open at once on one connection/,
    );
  });

  test('--help lists --drain-timeout under the options of both ends, and both take it', () => {
    const env = { MUXWIRE_TOKEN: 'x' };
    const server = parseCommand(['server', '--listen', 'h:1', '--drain-timeout', '100'], env) as {
      drainTimeout: number;
    };
    const client = parseCommand(['client', '--server', 'h:1', '-L', '1:h:2', '--drain-timeout', '200'], env) as {
      drainTimeout: number;
    };
    assert.equal(server.drainTimeout, 100);
    assert.equal(client.drainTimeout, 200);
    const both = USAGE.slice(USAGE.indexOf('\nBoth:\n'));
    assert.match(both, /^ {2}--drain-timeout MS /m, 'listed under "Both:"');
    assert.equal(USAGE.split('--drain-timeout').length, 2, 'listed once');
  });

  test('--ws takes a ws:// or wss:// URL instead of --server (wss implies TLS), and --proxy an http:// URL, neither with credentials', () => {
    const env = { MUXWIRE_TOKEN: 'x' };
    const ws = parseCommand(['client', '--ws', 'wss://example.org/t', '--ca', 'f', '-L', '1:h:2'], env) as {
      server: unknown;
      ws: URL;
      tls: unknown;
    };
    assert.deepEqual(ws.server, { host: 'example.org', port: 443 });
    assert.equal(ws.ws.href, 'wss://example.org/t');
    assert.deepEqual(ws.tls, { ca: 'f', fingerprint: undefined });
    assert.throws(
      () => parseCommand(['client', '--ws', 'ws://h:1/t', '--server', 'h:1', '-L', '1:h:2'], env),
      /one of them/,
    );
    assert.throws(() => parseCommand(['client', '--ws', 'http://h:1/t', '-L', '1:h:2'], env), /ws:\/\/ or wss:\/\//);
    assert.throws(
      () => parseCommand(['client', '--ws', 'ws://h:1/t', '--tls', '-L', '1:h:2'], env),
      /needs a wss:\/\/ URL/,
    );
    assert.throws(() => parseCommand(['server', '--listen', 'h:1', '--ws', 'tunnel'], env), /path starting with \//);
    const proxied = parseCommand(['client', '--server', 'h:1', '--proxy', 'http://proxy:3128', '-L', '1:h:2'], env) as {
      proxy: URL;
    };
    assert.equal(proxied.proxy.host, 'proxy:3128');
    assert.throws(
      () => parseCommand(['client', '--server', 'h:1', '--proxy', 'http://u:p@proxy:3128', '-L', '1:h:2'], env),
      /credentials/,
    );
    // Nor does --ws: a user and password would be logged and sent before a --fingerprint is checked.
    for (const url of ['wss://alice:s3cret-pass@h:1/t', 'ws://alice@h:1/t']) {
      assert.throws(
        () => parseCommand(['client', '--ws', url, '-L', '1:h:2'], env),
        (error: Error) => error.message.includes('--ws with credentials') && !error.message.includes('s3cret'),
      );
    }
    assert.throws(
      () => parseCommand(['client', '--server', 'h:1', '--proxy', 'socks5://proxy:1080', '-L', '1:h:2'], env),
      /http:\/\/ URL/,
    );
    assert.throws(
      () => parseCommand(['server', '--listen', 'h:1', '--proxy', 'http://p:1'], env),
      /not an option of 'server'/,
    );
  });

  test("fingerprints are normalized to Node's form and checked for length", () => {
    const hex = 'ab'.repeat(32);
    assert.equal(parseFingerprint(hex), Array(32).fill('AB').join(':'));
    assert.equal(parseFingerprint(`sha256:${Array(32).fill('ab').join(':')}`), Array(32).fill('AB').join(':'));
    assert.throws(() => parseFingerprint('abcd'), UsageError);
  });
});

describe('token', () => {
  test('compares equal tokens true and any other false, whatever the lengths', () => {
    const token = newToken();
    assert.equal(token.length, 43);
    assert.ok(tokensMatch(token, token));
    assert.ok(!tokensMatch(`${token}x`, token));
    assert.ok(!tokensMatch('', token));
    assert.ok(!tokensMatch(token.slice(0, -1), token));
    // Of the same length: another token, and the token with its first or its last character changed.
    const other = newToken();
    assert.equal(other.length, token.length);
    assert.ok(!tokensMatch(other, token));
    const flip = (c: string): string => (c === 'A' ? 'B' : 'A');
    assert.ok(!tokensMatch(flip(token[0]!) + token.slice(1), token));
    assert.ok(!tokensMatch(token.slice(0, -1) + flip(token.at(-1)!), token));
    assert.ok(tokensMatch(`${token.slice(0, 20)}${token.slice(20)}`, token), 'an equal string built apart matches');
  });

  test('a token file its group or other users can read is used, with a warning naming chmod 600', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'muxwire-token-'));
    try {
      const path = join(dir, 'token');
      writeFileSync(path, '0123456789abcdef\n');
      const heard = async (mode: number): Promise<string[]> => {
        chmodSync(path, mode);
        const warnings: string[] = [];
        const load = loadToken as (
          source: { kind: 'file'; path: string },
          env: Record<string, string>,
          warn: (message: string) => void,
        ) => Promise<string>;
        assert.equal(await load({ kind: 'file', path }, {}, (message) => warnings.push(message)), '0123456789abcdef');
        return warnings;
      };
      assert.deepEqual(await heard(0o600), []);
      assert.deepEqual(await heard(0o400), []);
      const [others] = await heard(0o644);
      assert.match(others ?? '', /can be read by other users \(mode 644\).*chmod 600 /);
      const [group] = await heard(0o640);
      assert.match(group ?? '', /can be read by its group \(mode 640\)/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test(`a token file is read up to ${MAX_TOKEN_FILE_BYTES / 1024} KiB: one with more (/dev/zero, a large file) is refused without being read whole`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'muxwire-token-'));
    try {
      const started = performance.now();
      // Before, /dev/zero was read until the string could not be made (about 600 MB, "Invalid string length").
      await assert.rejects(loadToken({ kind: 'file', path: '/dev/zero' }, {}), {
        code: 'ERR_TUNNEL_TOKEN',
        message: `the token file /dev/zero holds more than ${MAX_TOKEN_FILE_BYTES} bytes: not a token file`,
      });
      assert.ok(performance.now() - started < 1000, 'refused at once');
      const large = join(dir, 'large');
      writeFileSync(large, Buffer.alloc(MAX_TOKEN_FILE_BYTES + 1, 'a'), { mode: 0o600 });
      await assert.rejects(loadToken({ kind: 'file', path: large }, {}), /holds more than 8192 bytes/);
      // The longest token with surrounding whitespace is read whole.
      const padded = join(dir, 'padded');
      const token = 'x'.repeat(1024);
      writeFileSync(padded, `\n${token}${' '.repeat(MAX_TOKEN_FILE_BYTES - 1025)}`, { mode: 0o600 });
      assert.equal(await loadToken({ kind: 'file', path: padded }, {}), token);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a missing, empty or short token is ERR_TUNNEL_TOKEN; surrounding whitespace is dropped', async () => {
    await assert.rejects(loadToken({ kind: 'file', path: '/nonexistent/token' }, {}), { code: 'ERR_TUNNEL_TOKEN' });
    await assert.rejects(loadToken({ kind: 'env', name: 'T' }, { T: '  short \n' }), { code: 'ERR_TUNNEL_TOKEN' });
    assert.equal(await loadToken({ kind: 'env', name: 'T' }, { T: ' 0123456789abcdef\n' }), '0123456789abcdef');
  });
});

describe('control protocol', () => {
  test('a message is read whole from split chunks, and what follows it stays in the stream', async () => {
    const stream = new PassThrough();
    const frame = Buffer.concat([
      encode({ type: 'connect', host: '127.0.0.1', port: 80 }),
      Buffer.from('GET / HTTP/1.0\r\n'),
    ]);
    for (let i = 0; i < frame.length; i += 3) stream.write(frame.subarray(i, i + 3));
    assert.deepEqual(await readMessage(stream, 1000), { type: 'connect', host: '127.0.0.1', port: 80 });
    stream.end();
    const rest: Buffer[] = [];
    for await (const chunk of stream) rest.push(chunk as Buffer);
    assert.equal(Buffer.concat(rest).toString(), 'GET / HTTP/1.0\r\n');
  });

  test('bad input is a typed error: oversized length, not JSON, wrong shapes, early end, silence', async () => {
    const oversized = new PassThrough();
    oversized.write(Buffer.from([0xff, 0xff]));
    await assert.rejects(readMessage(oversized, 1000), { code: 'ERR_TUNNEL_PROTOCOL' });
    assert.ok(0xffff > MAX_MESSAGE_BYTES);

    const notJson = new PassThrough();
    notJson.write(Buffer.from([0, 3, 0x7b, 0x7b, 0x7b]));
    await assert.rejects(readMessage(notJson, 1000), { code: 'ERR_TUNNEL_PROTOCOL' });

    const early = new PassThrough();
    early.end(Buffer.from([0, 10, 0x7b]));
    await assert.rejects(readMessage(early, 1000), { code: 'ERR_TUNNEL_PROTOCOL' });

    await assert.rejects(readMessage(new PassThrough(), 50), { code: 'ERR_TUNNEL_TIMEOUT' });

    for (const bad of [
      null,
      [],
      'x',
      { type: 'nope' },
      { type: 'connect', host: 'h', port: 0 },
      { type: 'connect', host: 7, port: 80 },
      { type: 'hello', version: 1, token: 't', forwards: [{ kind: 'X' }] },
      { type: 'error', code: 'ERR_OTHER', message: 'm' },
      { type: 'remote', index: -1 },
      { type: 'welcome', version: 1, results: [{ ok: 'yes' }] },
    ]) {
      assert.throws(() => validate(bad), { code: 'ERR_TUNNEL_PROTOCOL' }, JSON.stringify(bad));
    }
  });

  test("a peer's hosts and binds are host names or addresses: a line break, an escape, a space or a slash is a protocol error", () => {
    for (const host of ['example.org', 'db_1.internal', '127.0.0.1', '::1', 'fe80::1%eth0', 'A-Z.0-9']) {
      assert.deepEqual(validate({ type: 'connect', host, port: 80 }), { type: 'connect', host, port: 80 });
      const hello = { type: 'hello', version: 1, token: 't', forwards: [{ kind: 'R', bind: host, port: 0 }] };
      assert.deepEqual(validate(hello), hello);
    }
    const forged = 'x\nmuxwire: client 203.0.113.9:4444 presented a wrong token\n\x1b[2K';
    for (const host of [forged, '', 'a b', 'a/b', 'h\u202e', 'bücher.example', 'x'.repeat(256)]) {
      assert.throws(() => validate({ type: 'connect', host, port: 80 }), { code: 'ERR_TUNNEL_PROTOCOL' }, host);
      assert.throws(
        () => validate({ type: 'hello', version: 1, token: 't', forwards: [{ kind: 'L', host, port: 80 }] }),
        { code: 'ERR_TUNNEL_PROTOCOL' },
      );
      assert.throws(
        () => validate({ type: 'hello', version: 1, token: 't', forwards: [{ kind: 'R', bind: host, port: 0 }] }),
        { code: 'ERR_TUNNEL_PROTOCOL' },
      );
    }
    // The command line takes the same hosts, so a client never announces one its server refuses.
    assert.throws(() => parseForward('8080:a\u001bb:80', 'L'), UsageError);
    assert.throws(() => parseAddress('a\nb:80', '--server'), UsageError);
  });

  test(`a --ws tunnel takes WebSocket messages of at most ${WS_MAX_MESSAGE_BYTES / 1024} KiB: the most one turn's writes are joined into, more than a frame`, () => {
    assert.equal(WS_MAX_MESSAGE_BYTES, 256 * 1024);
    assert.equal(WS_MAX_MESSAGE_BYTES, WS_JOIN_BYTES);
  });
});

describe('what the log shows', () => {
  test("on stderr an event's control characters are escaped: a peer's string cannot start a line or an escape sequence", () => {
    assert.equal(
      escapeControls('no\nmuxwire: connected\r\t\x1b[2K\x00\x7f\u009b\u2028\u202e end'),
      'no\\nmuxwire: connected\\r\\t\\x1b[2K\\x00\\x7f\\x9b\\u2028\\u202e end',
    );
    assert.equal(escapeControls('plain: été, 東京, 127.0.0.1:80'), 'plain: été, 東京, 127.0.0.1:80');
    const err = new PassThrough();
    let text = '';
    err.on('data', (chunk: Buffer) => (text += chunk.toString()));
    const reporter = new Reporter(false, new PassThrough(), err);
    reporter.event('forward-refused', '-L 1:h:2: no\nmuxwire: connected to 127.0.0.1:7000\n\x1b[1A');
    assert.equal(text, 'muxwire: -L 1:h:2: no\\nmuxwire: connected to 127.0.0.1:7000\\n\\x1b[1A\n');
    // --json writes JSON, with every such character as an escape: JSON.stringify alone leaves DEL, the C1
    // controls, the line separators and the bidirectional overrides raw, in a peer's string too.
    const out = new PassThrough();
    let json = '';
    out.on('data', (chunk: Buffer) => (json += chunk.toString()));
    const hostile = 'a\nb\x1b \x7f \u009b2J \u2028 \u2029 \u202e \u2066 end';
    new Reporter(true, out, new PassThrough()).event('x', hostile, { host: '\u009b\u202e' });
    const line = json.slice(0, -1);
    assert.doesNotMatch(
      line,
      // eslint-disable-next-line no-control-regex -- matching control characters is the point
      /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/,
      'no raw control in the line',
    );
    const parsed = JSON.parse(line) as { message: string; host: string };
    assert.equal(parsed.message, hostile, 'the same value once parsed');
    assert.equal(parsed.host, '\u009b\u202e');
    assert.equal(json.split('\n').length, 2, 'one line');
  });

  test('a repeating event is reported at once, then at most once per interval with the count since, and flushed at the end', async () => {
    const reports: [number, boolean][] = [];
    const repeated = new RepeatedReport((count, first) => reports.push([count, first]), 100);
    repeated.add();
    repeated.add();
    repeated.add();
    assert.deepEqual(reports, [[1, true]]);
    await new Promise((resolve) => setTimeout(resolve, 150));
    assert.deepEqual(reports, [
      [1, true],
      [2, false],
    ]);
    await new Promise((resolve) => setTimeout(resolve, 150));
    repeated.add(); // after a quiet interval: at once again
    repeated.add();
    assert.deepEqual(reports.slice(2), [[1, false]]);
    repeated.flush();
    assert.deepEqual(reports.slice(2), [
      [1, false],
      [1, false],
    ]);
    assert.equal(repeated.total, 5);
  });

  test('events a peer causes per channel: one line per kind (event and code) at once, then the count and the latest, flushed at the end', async () => {
    const lines: { event: string; message: string; fields: Record<string, unknown> }[] = [];
    const events = new RepeatedEvents(
      { event: (event, message, fields = {}) => lines.push({ event, message, fields }) },
      100,
    );
    for (let i = 0; i < 1000; i++) {
      events.event('denied', `no --allow admits host${i}:80`, { code: 'ERR_TUNNEL_DENIED', host: `host${i}` });
    }
    events.event('forward-failed', 'the target refused', { code: 'ERR_TUNNEL_CONNECT' });
    events.event('forward-failed', 'bad request', { code: 'ERR_TUNNEL_PROTOCOL' });
    assert.deepEqual(
      lines.map((l) => `${l.event} ${l.message}`),
      ['denied no --allow admits host0:80', 'forward-failed the target refused', 'forward-failed bad request'],
    );
    await new Promise((resolve) => setTimeout(resolve, 150));
    assert.equal(lines.length, 4);
    assert.equal(lines[3]!.message, '999 more like this within 0.1 s; the latest: no --allow admits host999:80');
    assert.equal(lines[3]!.fields.count, 999);
    assert.equal(lines[3]!.fields.host, 'host999');
    await new Promise((resolve) => setTimeout(resolve, 100)); // a quiet interval: the next is reported at once
    events.event('denied', 'no --allow admits last:80', { code: 'ERR_TUNNEL_DENIED', host: 'last' });
    events.event('denied', 'no --allow admits later:80', { code: 'ERR_TUNNEL_DENIED', host: 'later' });
    events.flush();
    assert.deepEqual(
      lines.slice(4).map((l) => l.message),
      ['no --allow admits last:80', 'no --allow admits later:80'],
    );
  });
});

describe('why a session is gone', () => {
  for (const [code, expected] of [
    [0, /shutting down/],
    [1, /Go Away \(code 1: protocol error\)/],
    [2, /Go Away \(code 2: internal error\)/],
  ] as const) {
    test(`a Go Away with code ${code} from the server is reported as ${String(expected)}`, async () => {
      const [ours, theirs] = await tcpPair();
      const session = multiplexedClient(ours, { keepAliveInterval: 0 });
      try {
        const gone = sessionGone(session);
        theirs.write(frame(FrameType.goAway, 0, 0, code));
        assert.match(await gone, expected);
      } finally {
        session.destroy();
        theirs.destroy();
      }
    });
  }
});

describe('handshake places', () => {
  test('the client address of host:port and [v6]:port', () => {
    assert.equal(addressOf('127.0.0.1:4000'), '127.0.0.1');
    assert.equal(addressOf('[::1]:4000'), '::1');
    assert.equal(addressOf('[::ffff:10.0.0.1]:1'), '::ffff:10.0.0.1');
  });

  test('32 places for one address and 256 in all; a place given back is free again', () => {
    const slots = new HandshakeSlots();
    for (let port = 1; port <= 32; port++) assert.equal(slots.take(`10.0.0.1:${port}`), undefined);
    assert.match(slots.take('10.0.0.1:33') ?? '', /32 handshakes from 10\.0\.0\.1/);
    assert.equal(slots.take('[::1]:1'), undefined, 'another address still has places');
    slots.give('10.0.0.1:5');
    assert.equal(slots.take('10.0.0.1:34'), undefined);
    for (let i = 0; i < 7; i++) for (let port = 1; port <= 32; port++) slots.take(`10.0.1.${i}:${port}`);
    // 32 + 1 + 7 x 32 = 257 asked, 256 held: the last one of 10.0.1.6 was refused for the total.
    assert.match(slots.take('10.0.2.1:1') ?? '', /^256 handshakes already in progress/);
    slots.give('[::1]:1');
    assert.equal(slots.take('10.0.2.1:1'), undefined);
    slots.give('192.0.2.1:1'); // never taken: changes nothing
    assert.match(slots.take('10.0.2.2:1') ?? '', /^256 handshakes/);
  });

  test('a global IPv6 address counts against its /64 (a host is often given a whole one), other IPv6 addresses alone, an IPv4-mapped one as its IPv4 address', () => {
    assert.equal(sourceOf('2001:db8::1'), '2001:db8:0:0::/64');
    assert.equal(sourceOf('2001:DB8:0:0001:ffff::2'), '2001:db8:0:1::/64');
    assert.equal(sourceOf('2a01:4f8:1:2::abcd'), '2a01:4f8:1:2::/64');
    assert.equal(sourceOf('2a00:1::6:7:8:1.2.3.4'), '2a00:1:0:6::/64', 'a dotted tail is two groups');
    assert.equal(sourceOf('2a00:1:0:6:7:8:102:304'), '2a00:1:0:6::/64');
    assert.equal(sourceOf('::ffff:10.0.0.1'), '10.0.0.1');
    assert.equal(sourceOf('10.0.0.1'), '10.0.0.1');
    // Not global unicast, or many hosts behind one prefix: each address alone.
    assert.equal(sourceOf('fe80::1%eth0'), 'fe80::1%eth0', 'link-local: per address and link');
    assert.equal(sourceOf('fe80::1%br_lan'), 'fe80::1%br_lan');
    assert.equal(sourceOf('64:ff9b::c633:6421'), '64:ff9b::c633:6421', 'NAT64: one IPv4 host each');
    assert.equal(sourceOf('2001:0:4136:e378:8000:63bf:3fff:fdd2'), '2001:0:4136:e378:8000:63bf:3fff:fdd2', 'Teredo');
    assert.equal(sourceOf('fd00:1::5'), 'fd00:1::5', 'unique local');
    assert.equal(sourceOf('::1'), '::1');
    const slots = new HandshakeSlots();
    // 32 addresses of one /64, one connection each: the 33rd address of that network finds no place.
    for (let i = 1; i <= 32; i++) assert.equal(slots.take(`[2001:db8::${i.toString(16)}]:1000`), undefined);
    assert.match(slots.take('[2001:db8::ffff:1]:1') ?? '', /32 handshakes from 2001:db8:0:0::\/64/);
    assert.equal(slots.take('[2001:db8:0:1::1]:1'), undefined, 'the next /64 has its own places');
    assert.match(slots.take('[::ffff:10.0.0.1]:1') ?? 'taken', /taken/);
    slots.give('[2001:db8::7]:1000');
    assert.equal(slots.take('[2001:db8::abcd]:1'), undefined, 'a place given back to the /64');
  });
});

test('a listening tunnel listener reports the connections it could not accept, where it dropped them before', async () => {
  const failures: Error[] = [];
  const config = {
    listen: { host: '127.0.0.1', port: 0 },
    tls: undefined,
    wsPath: undefined,
  } as unknown as ServerConfig;
  const server = await listenTunnel(config, (transport) => transport.destroy(), {
    tlsFailed: () => {},
    refused: () => {},
    acceptFailed: (error) => failures.push(error),
  });
  try {
    // What Node emits when accept() fails (libuv closes the connections itself on EMFILE while it holds a spare
    // descriptor, and passes the error on when it does not).
    const error = Object.assign(new Error('accept EMFILE'), { code: 'EMFILE', syscall: 'accept' });
    server.emit('error', error);
    assert.deepEqual(failures, [error]);
  } finally {
    server.close();
  }
});

test("the --ws server reads a request's path as ws does, without parsing a URL", () => {
  assert.equal(requestPath('/t'), '/t');
  assert.equal(requestPath('/t?x=1'), '/t');
  assert.equal(requestPath(undefined), '/');
  assert.equal(requestPath('http://a:99999/'), 'http://a:99999/', 'a target new URL() throws on');
  assert.equal(requestPath('/a/../t'), '/a/../t', 'not normalized: ws compares it as it is');
});

test('a WebSocket listener gives back the place of every connection reset before it was accepted (they share no address)', async () => {
  const refusals: string[] = [];
  const config = { listen: { host: '127.0.0.1', port: 0 }, wsPath: '/t' } as unknown as ServerConfig;
  const server = await listenTunnel(config, (transport) => transport.destroy(), {
    tlsFailed: () => {},
    refused: (_remote, why) => refusals.push(why),
    acceptFailed: () => {},
  });
  const port = (server.address() as net.AddressInfo).port;
  let unaddressed = 0;
  server.prependListener('connection', (socket: net.Socket) => {
    if (socket.remoteAddress === undefined) unaddressed++;
  });
  /** Opens `n` connections, each reset as soon as it connects (the server accepts most of them afterwards). */
  const burst = (n: number): Promise<unknown> =>
    Promise.all(
      Array.from(
        { length: n },
        () =>
          new Promise<void>((resolve) => {
            const socket = net.connect(port, '127.0.0.1', () => {
              socket.resetAndDestroy();
              resolve();
            });
            socket.on('error', () => resolve());
          }),
      ),
    );
  try {
    for (let round = 0; round < 4; round++) {
      await burst(20);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    await burst(5);
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.deepEqual(refusals, [], `${unaddressed} connections came without an address`);
  } finally {
    server.close();
  }
});

describe('reconnect backoff', () => {
  test('doubles from 100 ms up to the cap, with the upper half random', () => {
    assert.equal(
      backoffDelay(0, 100, 5000, () => 0),
      50,
    );
    assert.equal(
      backoffDelay(0, 100, 5000, () => 1),
      100,
    );
    assert.equal(
      backoffDelay(3, 100, 5000, () => 0),
      400,
    );
    assert.equal(
      backoffDelay(3, 100, 5000, () => 1),
      800,
    );
    assert.equal(
      backoffDelay(20, 100, 5000, () => 0.5),
      3750,
    );
    assert.equal(
      backoffDelay(1000, 100, 5000, () => 1),
      5000,
    );
  });
});

describe('reconnecting after a session lost soon after it came up', () => {
  /**
   * Runs a reconnector for `runMs` whose every session is lost 30 ms after it comes up; resolves to the
   * sessions made and the delays the `down` hook heard.
   */
  async function cutSessions(stableMs: number, runMs: number): Promise<{ sessions: number; delays: number[] }> {
    const pairs: Awaited<ReturnType<typeof sessionPair>>[] = [];
    const delays: number[] = [];
    const options = {
      async establish() {
        const pair = await sessionPair();
        pairs.push(pair);
        setTimeout(() => void pair.close(), 30);
        return pair.client;
      },
      isFatal: () => false,
      maxDelay: 5000,
      retries: Infinity,
      stableMs,
      hooks: {
        up() {},
        down(_session: unknown, _reason: string, delayMs: number) {
          delays.push(delayMs);
        },
        retry() {},
        giveUp() {},
      },
    };
    const reconnector = new Reconnector(options);
    reconnector.start();
    await new Promise((resolve) => setTimeout(resolve, runMs));
    reconnector.stop();
    for (const pair of pairs) await pair.close();
    return { sessions: pairs.length, delays };
  }

  test('the next attempt backs off (doubling) as after a failed one, instead of coming at once', async () => {
    const { sessions, delays } = await cutSessions(1000, 1500);
    // 30 ms a session, then waits of 50-100, 100-200, 200-400, 400-800 ms: at most 6 sessions in 1.5 s
    // (without the backoff, one every 30 ms or so).
    assert.ok(sessions >= 3 && sessions <= 6, `${sessions} sessions in 1.5 s`);
    assert.ok(delays.length >= 2 && delays.every((d) => d > 0), `delays ${delays.join(', ')}`);
    assert.ok(delays[1]! >= 100 && delays[1]! <= 200, `the second wait doubled: ${delays.join(', ')}`);
  });

  test('a session that lasted the stable time starts the backoff over: no wait', async () => {
    const { sessions, delays } = await cutSessions(10, 500);
    assert.ok(sessions >= 8, `${sessions} sessions in 0.5 s`);
    assert.ok(
      delays.every((d) => d === 0),
      `delays ${delays.join(', ')}`,
    );
  });
});

test('while a connection waits for the session, each retry reports the wait it really has (the demand interval), not the backoff it cuts short', async () => {
  const attempts: number[] = [];
  const reported: number[] = [];
  const options = {
    async establish(): Promise<never> {
      attempts.push(performance.now());
      throw new Error('connection refused');
    },
    isFatal: () => false,
    maxDelay: 5000,
    retries: Infinity,
    hooks: {
      up() {},
      down() {},
      retry(_error: Error, delayMs: number) {
        reported.push(delayMs);
      },
      giveUp() {},
    },
  };
  const reconnector = new Reconnector(options);
  reconnector.start();
  const waiting = reconnector.waitForSession(10_000);
  await new Promise((resolve) => setTimeout(resolve, 1600));
  reconnector.stop();
  assert.equal(await waiting, undefined);
  // Without the waiting connection, the backoff would have reached 400-800 ms by the fourth failure.
  assert.ok(attempts.length >= 5, `${attempts.length} attempts`);
  for (const [i, delay] of reported.entries()) {
    assert.ok(delay <= DEMAND_INTERVAL_MS, `retry ${i + 1} reported ${delay} ms`);
    const next = attempts[i + 1];
    if (next !== undefined) {
      const gap = next - attempts[i]!;
      assert.ok(gap <= delay + 150, `retry ${i + 1} reported ${delay} ms, came after ${Math.round(gap)} ms`);
    }
  }
});

describe('status', () => {
  /** A stream that keeps what is written; `isTTY` as a terminal would have it. */
  function sink(isTTY: boolean): NodeJS.WritableStream & { isTTY: boolean; text: string } {
    const stream = new PassThrough() as unknown as NodeJS.WritableStream & { isTTY: boolean; text: string };
    stream.isTTY = isTTY;
    stream.text = '';
    (stream as unknown as PassThrough).on('data', (chunk: Buffer) => {
      stream.text += chunk.toString();
    });
    return stream;
  }

  async function until(check: () => boolean, what: string): Promise<void> {
    const deadline = performance.now() + 5000;
    while (!check()) {
      assert.ok(performance.now() < deadline, what);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  test('on a TTY one status line (up/down, RTT, forwarded connections, bytes/s each way, reconnects) is redrawn, and events print above it', async () => {
    const err = sink(true);
    const reporter = new Reporter(false, sink(false), err, 20);
    const traffic = new Traffic();
    let up = true;
    reporter.startStatus(() => ({ up, rtt: 1.25, channels: 3, reconnects: 2 }), traffic);
    try {
      await until(
        // The session's 3 channels (a control channel among them) are not connections: none is forwarded.
        () => err.text.includes('[up] rtt 1.3 ms · 0 connections · in 0 B/s · out 0 B/s · 2 reconnects'),
        `the status line: ${JSON.stringify(err.text)}`,
      );
      reporter.event('session-down', 'lost the session');
      // eslint-disable-next-line no-control-regex -- the terminal's erase-line sequence is what is checked
      assert.match(err.text, /\r\x1b\[Kmuxwire: lost the session\n/, 'the line is cleared before an event is printed');
      up = false;
      await until(() => err.text.includes('[down]'), 'the line shows the session down');
    } finally {
      reporter.stop();
    }
  });

  test('not on a TTY there is no status line; with --json a status event carries the same figures', async () => {
    const err = sink(false);
    const plain = new Reporter(false, sink(false), err, 10);
    plain.startStatus(() => ({ up: true, rtt: 1, channels: 1, reconnects: 0 }), new Traffic());
    await new Promise((resolve) => setTimeout(resolve, 60));
    plain.stop();
    assert.equal(err.text, '');

    const out = sink(false);
    const json = new Reporter(true, out, sink(true), 10);
    json.startStatus(() => ({ up: true, rtt: 0.5, channels: 7, reconnects: 1 }), new Traffic());
    try {
      await until(() => out.text.includes('"event":"status"'), 'a status event');
      const event = JSON.parse(out.text.split('\n')[0]!) as Record<string, unknown>;
      assert.equal(event.up, true);
      assert.equal(event.rttMs, 0.5);
      assert.equal(event.channels, 7);
      assert.equal(event.reconnects, 1);
      assert.equal(typeof event.inBytesPerSecond, 'number');
      assert.equal(typeof event.outBytesPerSecond, 'number');
    } finally {
      json.stop();
    }
  });
});

describe('session transport', () => {
  /** A connected TCP pair on loopback; `calls` records the client socket's `_write` and `_writev` calls. */
  async function socketPair(): Promise<{
    client: net.Socket;
    server: net.Socket;
    calls: string[];
    received: () => Promise<Buffer>;
    close(): void;
  }> {
    const listener = net.createServer({ allowHalfOpen: true });
    listener.listen(0, '127.0.0.1');
    await once(listener, 'listening');
    const client = net.connect((listener.address() as net.AddressInfo).port, '127.0.0.1');
    const [server] = (await once(listener, 'connection')) as [net.Socket];
    await once(client, 'connect');
    const calls: string[] = [];
    const socket = client as unknown as {
      _write: (...a: unknown[]) => void;
      _writev: (chunks: unknown[], cb: unknown) => void;
    };
    const write = socket._write.bind(socket);
    const writev = socket._writev.bind(socket);
    socket._write = (...a) => {
      calls.push('write');
      write(...a);
    };
    socket._writev = (chunks, cb) => {
      calls.push(`writev ${chunks.length}`);
      writev(chunks, cb);
    };
    const chunks: Buffer[] = [];
    server.on('data', (chunk: Buffer) => chunks.push(chunk));
    return {
      client,
      server,
      calls,
      received: async () => {
        await once(server, 'end');
        return Buffer.concat(chunks);
      },
      close() {
        client.destroy();
        server.destroy();
        listener.close();
      },
    };
  }

  const sink = { data() {}, drain() {}, end() {}, error() {}, close() {} };

  test('small writes of one event-loop turn leave in one writev, after the turn', async () => {
    const pair = await socketPair();
    try {
      const transport = coalescingTransport(pair.client);
      transport.start(sink);
      const done: string[] = [];
      transport.write([Buffer.from('one ')], () => done.push('one'));
      transport.write([Buffer.from('two '), Buffer.from('three ')], () => done.push('two'));
      transport.write([Buffer.from('four')], () => done.push('four'));
      assert.deepEqual(pair.calls, [], 'nothing is written during the turn');
      await new Promise((resolve) => setImmediate(resolve));
      assert.deepEqual(pair.calls, ['writev 4']);
      transport.end();
      assert.equal((await pair.received()).toString(), 'one two three four');
      assert.deepEqual(done, ['one', 'two', 'four'], 'every write is reported done, in order');
    } finally {
      pair.close();
    }
  });

  test(`a write of ${DIRECT_WRITE_BYTES / 1024} KiB or more leaves at once, with the small ones held before it; end() flushes what is held`, async () => {
    const pair = await socketPair();
    try {
      const transport = coalescingTransport(pair.client);
      transport.start(sink);
      transport.write([Buffer.from('head ')], () => {});
      transport.write([Buffer.alloc(DIRECT_WRITE_BYTES, 'x')], () => {});
      assert.deepEqual(pair.calls, ['writev 2'], 'the bulk write and the one before it leave together, at once');
      transport.write([Buffer.from(' tail')], () => {});
      transport.end(); // before the turn ends: the held write must still go out, then the FIN
      const received = await pair.received();
      assert.equal(received.length, 5 + DIRECT_WRITE_BYTES + 5);
      assert.equal(received.subarray(0, 5).toString(), 'head ');
      assert.equal(received.subarray(-5).toString(), ' tail');
    } finally {
      pair.close();
    }
  });
  test('over a stream without writev (the WebSocket stream), the small writes of one turn reach it joined, as one chunk', async () => {
    const chunks: string[] = [];
    const stream = new Duplex({
      read() {},
      write(chunk: Buffer, _encoding, callback) {
        chunks.push(chunk.toString());
        callback();
      },
    });
    const transport = coalescingTransport(stream);
    transport.start(sink);
    const done: string[] = [];
    assert.equal(
      transport.write([Buffer.from('a')], () => done.push('a')),
      true,
    );
    transport.write([Buffer.from('b'), Buffer.from('c')], () => done.push('bc'));
    assert.deepEqual(chunks, []);
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(chunks, ['abc']);
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(done, ['a', 'bc']);
    transport.write([Buffer.from('d')], () => {});
    transport.write([Buffer.alloc(DIRECT_WRITE_BYTES, 'e')], () => {});
    assert.deepEqual(
      (chunks as string[]).map((c) => c.slice(0, 2)),
      ['ab', 'd', 'ee'],
      'a bulk write goes at once, after what was held',
    );
    stream.destroy();
  });

  test(`over a stream without writev, one turn's small writes are joined into chunks of at most ${WS_JOIN_BYTES / 1024} KiB, in order`, async () => {
    const chunks: Buffer[] = [];
    const stream = new Duplex({
      read() {},
      write(chunk: Buffer, _encoding, callback) {
        chunks.push(chunk);
        callback();
      },
    });
    const transport = coalescingTransport(stream);
    transport.start(sink);
    // 100 writes just under the direct-write size: 1.5 MiB held in one turn.
    const size = DIRECT_WRITE_BYTES - 1;
    const sent: Buffer[] = [];
    for (let i = 0; i < 100; i++) {
      const part = Buffer.alloc(size, i);
      sent.push(part);
      transport.write([part], () => {});
    }
    await new Promise((resolve) => setImmediate(resolve));
    assert.ok(chunks.length > 1, `${chunks.length} chunk(s)`);
    for (const chunk of chunks) assert.ok(chunk.length <= WS_JOIN_BYTES, `a chunk of ${chunk.length} bytes`);
    assert.ok(Buffer.concat(chunks).equals(Buffer.concat(sent)), 'the bytes, whole and in order');
    // Full chunks but the last: each holds as many whole writes as fit.
    for (const chunk of chunks.slice(0, -1)) assert.equal(chunk.length, Math.floor(WS_JOIN_BYTES / size) * size);
    stream.destroy();
  });

  test('joinUpTo keeps a part larger than the limit whole, on its own, and joins the runs around it', () => {
    const parts = [Buffer.from('ab'), Buffer.from('cd'), Buffer.from('efghij'), Buffer.from('k'), Buffer.from('l')];
    assert.deepEqual(
      joinUpTo(parts, 4).map((chunk) => Buffer.from(chunk).toString()),
      ['abcd', 'efghij', 'kl'],
    );
    assert.equal(joinUpTo([parts[0]!], 4)[0], parts[0], 'a lone part is passed on, not copied');
    assert.deepEqual(joinUpTo([], 4), []);
  });
});
