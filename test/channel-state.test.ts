import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChannelState, type ChannelEndpoint } from '../src/core/channel-state.js';

function endpoint(log: string[]): ChannelEndpoint {
  return {
    deliver() {},
    remoteEnded() {},
    fail: (error) => {
      log.push(`endpoint failed: ${error.message}`);
    },
    bufferedBytes: 0,
    destroyed: false,
  };
}

test('ChannelState.fail: reset, the endpoint told first, then every queued write fails with the same error', () => {
  const log: string[] = [];
  const channel = new ChannelState(1, true, 256 * 1024, 1024 * 1024);
  channel.endpoint = endpoint(log);
  channel.enqueue(new Uint8Array(3), (error) => log.push(`write 1: ${error?.message}`));
  channel.enqueue(new Uint8Array(5), (error) => log.push(`write 2: ${error?.message}`));
  channel.fail(new Error('boom'));
  assert.equal(channel.state, 'reset');
  assert.deepEqual(log, ['endpoint failed: boom', 'write 1: boom', 'write 2: boom']);
  assert.equal(channel.queuedBytes, 0);
  assert.equal(channel.queue.length, 0);
});

test('ChannelState.fail without failing the endpoint: the queue is dropped, the endpoint is not told', () => {
  const log: string[] = [];
  const channel = new ChannelState(2, false, 256 * 1024, 1024 * 1024);
  channel.endpoint = endpoint(log);
  channel.enqueue(new Uint8Array(1), (error) => log.push(`write: ${error?.message}`));
  channel.fail(new Error('reset here'), false);
  assert.equal(channel.state, 'reset');
  assert.deepEqual(log, ['write: reset here']);
});

test('the clean-finish rule: writing ended, and the peer ended or reading was closed', () => {
  const cases: [localFin: boolean, remoteFin: boolean, readClosed: boolean, clean: boolean][] = [
    [false, false, false, false],
    [false, true, false, false],
    [false, true, true, false],
    [true, false, false, false],
    [true, true, false, true],
    [true, false, true, true],
  ];
  for (const [localFin, remoteFin, readClosed, clean] of cases) {
    const channel = new ChannelState(3, true, 256 * 1024, 1024 * 1024);
    channel.localFin = localFin;
    channel.remoteFin = remoteFin;
    channel.readClosed = readClosed;
    assert.equal(channel.finishedCleanly, clean, JSON.stringify({ localFin, remoteFin, readClosed }));
  }
});

test('unaccepted: a dialled channel before its ACK, even half-closed; never an inbound one', () => {
  const dialled = new ChannelState(1, true, 256 * 1024, 1024 * 1024);
  assert.equal(dialled.unaccepted, true, 'init');
  dialled.markSynSent();
  dialled.awaitingAck = true;
  dialled.markFinSent();
  assert.equal(dialled.state, 'local-closed');
  assert.equal(dialled.unaccepted, true, 'half-closed before its ACK');
  dialled.awaitingAck = false;
  dialled.markEstablished();
  assert.equal(dialled.unaccepted, false, 'acknowledged');
  const inbound = new ChannelState(2, false, 256 * 1024, 1024 * 1024);
  assert.equal(inbound.unaccepted, false);
});
