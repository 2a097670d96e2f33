/**
 * Items by deadline (a binary min-heap), for the open timeouts: the earliest deadline is at hand, the earliest
 * item comes out in O(log n), and an item goes in in O(log n), in O(1) when items come in deadline order (dials
 * under the session's one `openTimeout`). Each deadline is kept beside its item as it went in, so an item's own
 * state may change meanwhile.
 * @module
 */

export class DeadlineHeap<T> {
  #items: T[] = [];
  #at: number[] = [];

  get length(): number {
    return this.#items.length;
  }

  /** The earliest deadline; Infinity when empty. */
  get first(): number {
    return this.#at[0] ?? Infinity;
  }

  /** The item with the earliest deadline. */
  get top(): T | undefined {
    return this.#items[0];
  }

  push(item: T, at: number): void {
    const items = this.#items;
    const ats = this.#at;
    let i = items.length;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (ats[parent]! <= at) break;
      items[i] = items[parent]!;
      ats[i] = ats[parent]!;
      i = parent;
    }
    items[i] = item;
    ats[i] = at;
  }

  /** Takes out the item with the earliest deadline. */
  pop(): T | undefined {
    const top = this.#items[0];
    const last = this.#items.pop();
    const at = this.#at.pop()!;
    if (this.#items.length > 0) this.#sink(0, last!, at);
    return top;
  }

  /** Keeps only the items `keep` accepts (put back one by one: the caller drops many at a time, seldom). */
  retain(keep: (item: T) => boolean): void {
    const ats = this.#at;
    this.drain().forEach((item, i) => keep(item) && this.push(item, ats[i]!));
  }

  /** Empties the heap, returning its items (in no particular order). */
  drain(): T[] {
    const items = this.#items;
    this.#items = [];
    this.#at = [];
    return items;
  }

  /** Places `item` at `i` or below it, moving up the earlier of its children while they are earlier. */
  #sink(i: number, item: T, at: number): void {
    const items = this.#items;
    const ats = this.#at;
    const length = items.length;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= length) break;
      if (child + 1 < length && ats[child + 1]! < ats[child]!) child++;
      if (ats[child]! >= at) break;
      items[i] = items[child]!;
      ats[i] = ats[child]!;
      i = child;
    }
    items[i] = item;
    ats[i] = at;
  }
}
