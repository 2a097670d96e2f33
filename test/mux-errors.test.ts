/**
 * `isMuxError`: muxwire's errors told apart from others, also those of another installed copy of muxwire (whose
 * classes `instanceof` does not see) and of another realm, with a session's real errors among them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runInNewContext } from 'node:vm';
import {
  ChannelRefusedError,
  ChannelResetError,
  GoAwayError,
  MuxError,
  ProtocolError,
  SessionClosedError,
  StreamLimitError,
  TimeoutError,
  TransportClosedError,
  isMuxError,
} from '../src/index.js';
import { sessionPair } from './helpers.js';

test('isMuxError: true for every class of muxwire error, false for other errors and non-errors', () => {
  const ours = [
    new MuxError('ERR_MUX_INTERNAL', 'x'),
    new ProtocolError('x'),
    new SessionClosedError('x'),
    new GoAwayError(0),
    new ChannelResetError(3),
    new ChannelRefusedError(3),
    new StreamLimitError('x'),
    new TimeoutError('ERR_MUX_OPEN_TIMEOUT', 'x'),
    new TransportClosedError(),
  ];
  for (const error of ours) assert.equal(isMuxError(error), true, error.name);
  const revoked = Proxy.revocable({}, {});
  revoked.revoke();
  const others: unknown[] = [
    new Error('x'),
    new TypeError('x'),
    new DOMException('x', 'AbortError'),
    Object.assign(new Error('x'), { code: 'ECONNRESET' }),
    Object.assign(new Error('x'), { code: 42 }),
    Object.assign(new Error('x'), { code: 'ERR_MUX_NOT_A_CODE_OF_THIS_VERSION' }),
    new MuxError('ERR_MUX_NOT_A_CODE_OF_THIS_VERSION', 'a code that AnyMuxError would not type'),
    { code: 'ERR_MUX_GO_AWAY', message: 'an object, no error' },
    'ERR_MUX_GO_AWAY',
    null,
    undefined,
    revoked.proxy,
    new Proxy(new Error('x'), {
      get(target, key) {
        if (key === 'code') throw new Error('a code getter that throws');
        return Reflect.get(target, key) as unknown;
      },
    }),
  ];
  for (const [index, value] of others.entries()) assert.equal(isMuxError(value), false, `value ${index}`);
});

test('isMuxError: an error of another copy of muxwire (its own classes) or another realm is told by its code, and narrows by it', () => {
  // Another copy's GoAwayError: a class of its own with the same shape.
  class OtherCopyGoAway extends Error {
    readonly code = 'ERR_MUX_GO_AWAY';
    readonly goAwayCode = 2;
  }
  const other: unknown = new OtherCopyGoAway('peer sent Go Away (code 2)');
  assert.equal(other instanceof MuxError, false);
  assert.equal(isMuxError(other), true);
  if (isMuxError(other) && other.code === 'ERR_MUX_GO_AWAY') assert.equal(other.goAwayCode, 2);
  else assert.fail('narrowed by its code');

  const realm: unknown = runInNewContext(
    "Object.assign(new Error('channel 5 was reset by the peer'), { code: 'ERR_MUX_CHANNEL_RESET', channelId: 5 })",
  );
  assert.equal(realm instanceof Error, false);
  assert.equal(isMuxError(realm), true);
});

test("isMuxError: a session's own failures are muxwire errors (a dial refused by the peer's Go Away, a closed session's dial)", async () => {
  const pair = await sessionPair();
  const { client, server } = pair;
  server.goAway();
  const refused = await new Promise<unknown>((resolve) => client.dial().once('error', resolve));
  assert.equal(isMuxError(refused), true, String(refused));
  assert.match((refused as MuxError).code, /^ERR_MUX_(CHANNEL_REFUSED|GO_AWAY)$/);
  await client.close();
  let thrown: unknown;
  try {
    client.dial();
  } catch (error) {
    thrown = error;
  }
  assert.equal(isMuxError(thrown), true);
  assert.equal((thrown as MuxError).code, 'ERR_MUX_SESSION_CLOSED');
  await pair.close();
});
