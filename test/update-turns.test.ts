import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UpdateTurns } from '../src/core/update-turns.js';

const endOfTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

test('updates for one channel after another are not held (it may be the only one receiving)', async () => {
  let released = 0;
  const turns = new UpdateTurns(() => released++);
  assert.equal(turns.hold(1), false, 'the first update');
  assert.equal(turns.hold(1), false);
  await endOfTurn();
  assert.equal(turns.hold(1), false);
  assert.equal(released, 0);
});

test('an update following one for another channel is held to the end of the turn, released once', async () => {
  let released = 0;
  const turns = new UpdateTurns(() => released++);
  assert.equal(turns.hold(1), false);
  assert.equal(turns.hold(3), true);
  assert.equal(turns.hold(5), true);
  assert.equal(turns.hold(1), true);
  assert.equal(released, 0, 'not before the end of the turn');
  await endOfTurn();
  assert.equal(released, 1, 'released once for the whole turn');
  assert.equal(turns.hold(3), true, 'channels still alternate');
  assert.equal(turns.hold(3), false, 'then one channel alone');
  await endOfTurn();
  assert.equal(released, 2);
});
