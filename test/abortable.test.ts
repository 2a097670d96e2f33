/**
 * `whenAborted`: the one listener a signal holds for all of muxwire's calls waiting on it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { whenAborted } from '../src/core/abortable.js';

test('the calls run in the order they began watching, once each, and the listener goes with the abort', () => {
  const controller = new AbortController();
  const ran: number[] = [];
  for (let i = 0; i < 5; i++) whenAborted(controller.signal, () => ran.push(i));
  assert.equal(getEventListeners(controller.signal, 'abort').length, 1);
  controller.abort();
  assert.deepEqual(ran, [0, 1, 2, 3, 4]);
  assert.equal(getEventListeners(controller.signal, 'abort').length, 0);
});

test('the listener stays while one call watches, and goes when the last stops; a stop after the abort changes nothing', () => {
  const controller = new AbortController();
  const ran: string[] = [];
  const stopA = whenAborted(controller.signal, () => ran.push('a'));
  const stopB = whenAborted(controller.signal, () => ran.push('b'));
  stopA();
  stopA();
  assert.equal(getEventListeners(controller.signal, 'abort').length, 1);
  stopB();
  assert.equal(getEventListeners(controller.signal, 'abort').length, 0);
  const stopC = whenAborted(controller.signal, () => ran.push('c'));
  assert.equal(getEventListeners(controller.signal, 'abort').length, 1, 'a new call listens again');
  controller.abort();
  stopC();
  assert.deepEqual(ran, ['c']);
});

test('a call that stops another while the abort runs keeps that one from running, as the signal does with its listeners', () => {
  const controller = new AbortController();
  const ran: string[] = [];
  let stopSecond = (): void => {};
  whenAborted(controller.signal, () => {
    ran.push('first');
    stopSecond();
  });
  stopSecond = whenAborted(controller.signal, () => ran.push('second'));
  whenAborted(controller.signal, () => ran.push('third'));
  controller.abort();
  assert.deepEqual(ran, ['first', 'third']);
});

test('signals are watched apart', () => {
  const one = new AbortController();
  const two = new AbortController();
  const ran: string[] = [];
  whenAborted(one.signal, () => ran.push('one'));
  whenAborted(two.signal, () => ran.push('two'));
  two.abort();
  assert.deepEqual(ran, ['two']);
  assert.equal(getEventListeners(one.signal, 'abort').length, 1);
  one.abort();
  assert.deepEqual(ran, ['two', 'one']);
});

test('a signal already aborted when a call starts watching runs it from a microtask, unless the call stops first', async () => {
  const controller = new AbortController();
  controller.abort();
  const ran: string[] = [];
  whenAborted(controller.signal, () => ran.push('kept'));
  const stop = whenAborted(controller.signal, () => ran.push('stopped'));
  assert.deepEqual(ran, [], 'not within the call');
  stop();
  await Promise.resolve();
  assert.deepEqual(ran, ['kept']);
  assert.equal(getEventListeners(controller.signal, 'abort').length, 0, 'no listener on an aborted signal');
});
