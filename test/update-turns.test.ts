import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UpdateTurns } from '../src/core/update-turns.js';

const endOfTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

test('with one channel receiving, Window Updates are not held', async () => {
  let released = 0;
  const turns = new UpdateTurns(() => released++);
  let mark = turns.noteData(0);
  mark = turns.noteData(mark); // the same channel again in the same turn counts once
  assert.equal(turns.hold(), false);
  await endOfTurn();
  assert.equal(turns.hold(), false, 'the last turn had one channel receiving');
  assert.equal(released, 0);
});

test('with two channels receiving, updates are held to the end of the turn and released once', async () => {
  let released = 0;
  const turns = new UpdateTurns(() => released++);
  turns.noteData(0);
  turns.noteData(0);
  assert.equal(turns.hold(), true);
  assert.equal(turns.hold(), true);
  assert.equal(released, 0, 'not before the end of the turn');
  await endOfTurn();
  assert.equal(released, 1, 'released once for the whole turn');
  // The next turn remembers that several channels were receiving, even before its own data arrives.
  assert.equal(turns.hold(), true);
  await endOfTurn();
  assert.equal(released, 2);
  // A turn with no data received ends the busy spell.
  assert.equal(turns.hold(), false);
});

test('a turn ends only where an update was held; then each channel counts again', async () => {
  const turns = new UpdateTurns(() => {});
  const a = turns.noteData(0);
  await endOfTurn();
  assert.equal(turns.noteData(a), a, 'nothing held: no task ran, the same turn goes on');
  const b = turns.noteData(0);
  assert.equal(turns.hold(), true, 'two channels');
  await endOfTurn();
  const a2 = turns.noteData(a);
  assert.notEqual(a2, a, 'a new turn');
  assert.equal(turns.noteData(b), a2);
  assert.equal(turns.hold(), true, 'both channels again in this turn');
  await endOfTurn();
});
