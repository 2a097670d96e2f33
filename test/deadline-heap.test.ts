/**
 * `DeadlineHeap`, the open timeouts' heap: items come out in deadline order whatever order they went in, and
 * through compaction (`retain`), against a plain sorted list doing the same steps.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DeadlineHeap } from '../src/core/deadline-heap.js';

interface Item {
  at: number;
  live: boolean;
}

test('DeadlineHeap hands out the earliest deadline first, through pushes, pops and compaction in any order', () => {
  let seed = 7;
  const random = (): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed / 2 ** 32;
  };
  for (let round = 0; round < 20; round++) {
    const heap = new DeadlineHeap<Item>();
    let model: Item[] = [];
    const earliest = (): number => model.reduce((min, item) => Math.min(min, item.at), Infinity);
    for (let step = 0; step < 1000; step++) {
      const choice = random();
      if (choice < 0.55) {
        // Deadlines mostly rising (dials under one timeout), some anywhere, some equal.
        const at = random() < 0.7 ? step : Math.floor(random() * 1000);
        const item = { at, live: true };
        heap.push(item, at);
        model.push(item);
      } else if (choice < 0.9) {
        const item = heap.pop();
        if (model.length === 0) {
          assert.equal(item, undefined);
          continue;
        }
        assert.equal(item?.at, earliest(), `round ${round}, step ${step}`);
        model.splice(model.indexOf(item), 1);
      } else {
        for (const item of model) if (random() < 0.5) item.live = false;
        heap.retain((item) => item.live);
        model = model.filter((item) => item.live);
      }
      assert.equal(heap.length, model.length);
      assert.equal(heap.first, earliest());
      assert.equal(heap.top?.at, model.length === 0 ? undefined : earliest());
    }
    const rest = heap.drain();
    assert.equal(heap.length, 0);
    assert.equal(heap.first, Infinity);
    assert.deepEqual(new Set(rest), new Set(model));
  }
});
