/**
 * The shared secret of a tunnel: reading it (from a file or the environment, never argv), comparing it in
 * constant time, and making a new one.
 * @module
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { type FileHandle, open } from 'node:fs/promises';
import type { TokenSource } from './args.js';
import { TunnelError } from './errors.js';

/**
 * Shortest token accepted. A token is the only thing between the internet and every --allow target, so
 * one short enough to guess in the time the failure delay allows is refused outright.
 */
export const MIN_TOKEN_LENGTH = 16;
/** Longest token accepted, in characters. */
export const MAX_TOKEN_LENGTH = 1024;
/**
 * Most bytes read of a token file: room for the longest token in any UTF-8 and surrounding whitespace. A file
 * with more is refused unread beyond that, so that a path to something else (a large file, `/dev/zero`, a
 * pipe that never ends) costs a few KiB, not the memory of reading it whole.
 */
export const MAX_TOKEN_FILE_BYTES = 8 * 1024;
/**
 * How long the server waits before answering a wrong token. It slows guessing to one try per second per
 * connection and costs a legitimate user who mistyped only a second.
 */
export const AUTH_FAILURE_DELAY_MS = 1000;

/**
 * The warning for a secret file (a token, a TLS key) that its group or other users may read, given its mode;
 * `undefined` when only its owner may (and on Windows, whose files have no such mode bits). `harm` says what
 * a reader could then do.
 */
export function readableByOthers(mode: number, where: string, path: string, harm: string): string | undefined {
  if ((mode & 0o077) === 0 || process.platform === 'win32') return undefined;
  const who = (mode & 0o007) !== 0 ? 'other users' : 'its group';
  return `the ${where} can be read by ${who} (mode ${(mode & 0o777).toString(8)}), who can then ${harm}: chmod 600 ${path}`;
}

/** How to make a token file that only its owner can read, whatever the umask. */
export const TOKEN_RECIPE = '(umask 077; muxwire token > FILE)';

/**
 * Reads and checks the token; surrounding whitespace (a file's final newline) is not part of it. A token file
 * that its group or other users may read is used, but `warn` hears of it (as ssh warns of a key file), since
 * anyone who can read it can use the tunnel (not checked on Windows, whose files have no such mode bits).
 */
export async function loadToken(
  source: TokenSource,
  env: Record<string, string | undefined>,
  warn: (message: string) => void = () => {},
): Promise<string> {
  let raw: string;
  let where: string;
  if (source.kind === 'file') {
    where = `token file ${source.path}`;
    try {
      const file = await open(source.path, 'r');
      try {
        const { mode } = await file.stat();
        const readable = readableByOthers(mode, where, source.path, 'use the tunnel');
        if (readable !== undefined) warn(readable);
        raw = await readAtMost(file, MAX_TOKEN_FILE_BYTES, where);
      } finally {
        await file.close();
      }
    } catch (error) {
      if (error instanceof TunnelError) throw error;
      throw new TunnelError('ERR_TUNNEL_TOKEN', `cannot read the ${where}: ${(error as Error).message}`);
    }
  } else {
    where = `environment variable ${source.name}`;
    raw = env[source.name] ?? '';
  }
  const token = raw.trim();
  if (token.length < MIN_TOKEN_LENGTH) {
    throw new TunnelError(
      'ERR_TUNNEL_TOKEN',
      `the ${where} holds ${
        token.length === 0 ? 'no token' : 'a token shorter ' + `than ${MIN_TOKEN_LENGTH} characters`
      } (make one with: ${TOKEN_RECIPE})`,
    );
  }
  if (token.length > MAX_TOKEN_LENGTH) {
    throw new TunnelError(
      'ERR_TUNNEL_TOKEN',
      `the ${where} holds more than ${MAX_TOKEN_LENGTH} characters: not a token`,
    );
  }
  return token;
}

/**
 * Reads `file` to its end as UTF-8, or throws `ERR_TUNNEL_TOKEN` as soon as it has more than `limit` bytes.
 * Read in a loop: a pipe or a terminal gives its bytes in pieces.
 */
async function readAtMost(file: FileHandle, limit: number, where: string): Promise<string> {
  const buffer = Buffer.alloc(limit + 1);
  let length = 0;
  for (;;) {
    const { bytesRead } = await file.read(buffer, length, buffer.length - length, null);
    if (bytesRead === 0) break;
    length += bytesRead;
    if (length > limit) {
      throw new TunnelError('ERR_TUNNEL_TOKEN', `the ${where} holds more than ${limit} bytes: not a token file`);
    }
  }
  return buffer.toString('utf8', 0, length);
}

/**
 * Compares a presented token with the expected one in time independent of where they differ. Both are
 * hashed first so that the comparison also takes the same time whatever their lengths.
 */
export function tokensMatch(presented: string, expected: string): boolean {
  const a = createHash('sha256').update(presented, 'utf8').digest();
  const b = createHash('sha256').update(expected, 'utf8').digest();
  return timingSafeEqual(a, b);
}

/** A new token: 32 random bytes, base64url (43 characters). */
export function newToken(): string {
  return randomBytes(32).toString('base64url');
}
