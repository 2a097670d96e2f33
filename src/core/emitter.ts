/**
 * A small typed event emitter for the core (which may not import `node:events`). {@link Emitter} has what
 * the sessions and a page need (`on`, `once`, `off`, `removeListener`, `emit`, `listenerCount`), so that
 * `events.once(session, 'close')` works with it; {@link NodeEmitter} and {@link withNodeEmitterMethods} add
 * the rest of Node's `EventEmitter` (`prependListener`, `listeners`, ...) to the Node sessions and the light
 * channels. The split keeps those methods out of a browser bundle (muxwire/web's budget, issue 15).
 * A listener that throws does not break the session: the error is rethrown from a microtask, where it
 * surfaces as an uncaught exception just as it would from any Node event.
 * @module
 */

import { rethrowLater } from './defer.js';

// The event name's `as PropertyKey` looks unnecessary to the linter, yet tsc needs it to index the table.
/* eslint-disable @typescript-eslint/no-unnecessary-type-assertion */

/** What an event's listener may be: an `Emitter`'s event map gives each event's exact signature. */
export type Listener = (...args: any[]) => void;

/** A `once` listener's wrapper remembers the listener, so that `off` and `listeners` find it. */
type OnceWrapper = Listener & { listener: Listener };

/** Several listeners of one event; `emitting` is true while an `emit` goes through them. */
type Listeners = Listener[] & { emitting?: boolean };

type ListenerTable = Record<PropertyKey, Listener | Listeners | undefined>;

/**
 * The prototype of every listener table: it has no properties and no prototype, so no event name finds
 * something of `Object.prototype`. A table made with `Object.create(NO_PROTOTYPE)` stays an ordinary (fast)
 * object, unlike a null-prototype one: a third of the memory and half the time to fill, measured.
 */
const NO_PROTOTYPE: object = Object.freeze(Object.create(null) as object);

/**
 * The listener array of `key`, ready to change: itself, or, while an `emit` goes through it, a copy put in its
 * place (copy-on-write), so that the emit calls the listeners it started with.
 */
function changeable(table: ListenerTable, key: PropertyKey, entry: Listeners): Listener[] {
  return entry.emitting ? (table[key] = entry.slice()) : entry;
}

export class Emitter<Events extends { [K in keyof Events]: Listener }> {
  /**
   * Listeners by event: one listener as itself, several as an array, changed in place (adding or removing one
   * costs no copy of the others) except while an `emit` goes through it: then a change copies it first, and
   * the emit goes on through the list it started with, as Node's does (a listener added during an emit is not
   * called by it, one removed is still called). An event whose listeners are all gone keeps its key, set to
   * undefined (deleting a key would turn the object into a slow dictionary). Most channels have one listener
   * per event, and such a table is far lighter than a `Map` of arrays (one is made for every channel of a
   * session of `LightChannel`s).
   */
  protected listenerTable: ListenerTable | null = null;

  /** Adds a listener. */
  on<K extends keyof Events>(event: K, listener: Events[K]): this {
    return this.add(event, listener);
  }

  /** Adds a listener that is removed after its first call. */
  once<K extends keyof Events>(event: K, listener: Events[K]): this {
    return this.add(event, this.onceWrapper(event, listener));
  }

  /**
   * Removes a listener (added with `on` or `once`); if it is there more than once, the one called last (the
   * most recently added, unless prepended), as Node's `removeListener` does.
   */
  off<K extends keyof Events>(event: K, listener: Events[K]): this {
    const table = this.listenerTable;
    if (table === null) return this;
    const key = event as PropertyKey;
    const entry = table[key];
    if (entry === undefined) return this;
    const matches = (l: Listener): boolean => l === listener || (l as Partial<OnceWrapper>).listener === listener;
    if (typeof entry === 'function') {
      if (matches(entry)) table[key] = undefined;
      return this;
    }
    let index = entry.length - 1;
    while (index >= 0 && !matches(entry[index]!)) index--;
    if (index < 0) return this;
    if (entry.length === 2) table[key] = entry[1 - index];
    else changeable(table, key, entry).splice(index, 1);
    return this;
  }

  /** Same as `off`. */
  removeListener<K extends keyof Events>(event: K, listener: Events[K]): this {
    return this.off(event, listener);
  }

  /** How many listeners `event` has. */
  listenerCount(event: keyof Events): number {
    const entry = this.listenerTable?.[event as PropertyKey];
    return entry === undefined ? 0 : typeof entry === 'function' ? 1 : entry.length;
  }

  /**
   * Calls the listeners of `event`; returns whether there were any. Public, as on Node's `EventEmitter`; the
   * session emits its own events, and nothing inside it listens to them.
   */
  emit<K extends keyof Events>(event: K, ...args: Parameters<Events[K]>): boolean {
    const entry = this.listenerTable?.[event as PropertyKey];
    if (entry === undefined) return false;
    if (typeof entry === 'function') {
      this.call(entry, args);
    } else {
      const outer = entry.emitting; // an emit of this event from one of its listeners leaves it set
      entry.emitting = true;
      for (const listener of entry) this.call(listener, args);
      entry.emitting = outer;
    }
    return true;
  }

  /** Hook for subclasses: a listener was just added. */
  protected onListenerAdded(_event: keyof Events): void {}

  private call(listener: Listener, args: unknown[]): void {
    try {
      listener.apply(this, args);
    } catch (error) {
      rethrowLater(error);
    }
  }

  /** Adds a listener after the others (`NodeEmitter`'s prepending methods add theirs before). */
  protected add(event: keyof Events, listener: Listener): this {
    const table = (this.listenerTable ??= Object.create(NO_PROTOTYPE) as ListenerTable);
    const key = event as PropertyKey;
    const entry = table[key];
    if (entry === undefined) table[key] = listener;
    else if (typeof entry === 'function') table[key] = [entry, listener];
    else changeable(table, key, entry).push(listener);
    this.onListenerAdded(event);
    return this;
  }

  protected onceWrapper<K extends keyof Events>(event: K, listener: Events[K]): OnceWrapper {
    let fired = false; // an emit from within an earlier listener may reach it first: it runs once all the same
    const wrapper = ((...args: unknown[]) => {
      if (fired) return;
      fired = true;
      this.off(event, wrapper as unknown as Events[K]);
      listener.apply(this, args);
    }) as OnceWrapper;
    wrapper.listener = listener;
    return wrapper;
  }
}

/**
 * The rest of Node's `EventEmitter` interface, for the Node sessions and the light channels (code written
 * for Node's emitters may call any of these). The browser path leaves it out.
 */
export class NodeEmitter<Events extends { [K in keyof Events]: Listener }>
  extends Emitter<Events>
  implements NodeEmitterMethods<Events>
{
  /** Unset until `setMaxListeners` (no initialiser: {@link withNodeEmitterMethods} copies methods only). */
  private maxListeners?: number;

  /** Same as `on`. */
  addListener<K extends keyof Events>(event: K, listener: Events[K]): this {
    return this.add(event, listener);
  }

  /** Adds a listener before the others. */
  prependListener<K extends keyof Events>(event: K, listener: Events[K]): this {
    return this.prepend(event, listener);
  }

  /** Adds a listener before the others, removed after its first call. */
  prependOnceListener<K extends keyof Events>(event: K, listener: Events[K]): this {
    return this.prepend(event, this.onceWrapper(event, listener));
  }

  /** Removes every listener of `event`, or of every event. */
  removeAllListeners(event?: keyof Events): this {
    if (event === undefined) this.listenerTable = null;
    else if (this.listenerTable !== null) this.listenerTable[event as PropertyKey] = undefined;
    return this;
  }

  /** The listeners of `event`, as they were added (a `once` listener itself, not its wrapper). */
  listeners<K extends keyof Events>(event: K): Events[K][] {
    return this.listOf(event).map((l) => ((l as Partial<OnceWrapper>).listener ?? l) as Events[K]);
  }

  /** The listeners of `event`, `once` wrappers included. */
  rawListeners<K extends keyof Events>(event: K): Events[K][] {
    return [...this.listOf(event)] as Events[K][];
  }

  /** The events that have listeners. */
  eventNames(): (keyof Events)[] {
    const table = this.listenerTable;
    return table === null ? [] : (Reflect.ownKeys(table).filter((key) => table[key] !== undefined) as (keyof Events)[]);
  }

  /** Kept for Node's `EventEmitter` interface; this emitter never warns about the number of listeners. */
  setMaxListeners(n: number): this {
    this.maxListeners = n;
    return this;
  }

  /** The number last given to `setMaxListeners` (10 by default, as in Node); it limits nothing. */
  getMaxListeners(): number {
    return this.maxListeners ?? 10;
  }

  /** Adds a listener before the others (see `add`). */
  private prepend(event: keyof Events, listener: Listener): this {
    const table = (this.listenerTable ??= Object.create(NO_PROTOTYPE) as ListenerTable);
    const key = event as PropertyKey;
    const entry = table[key];
    if (entry === undefined) table[key] = listener;
    else if (typeof entry === 'function') table[key] = [listener, entry];
    else changeable(table, key, entry).unshift(listener);
    this.onListenerAdded(event);
    return this;
  }

  private listOf(event: keyof Events): Listener[] {
    const entry = this.listenerTable?.[event as PropertyKey];
    return entry === undefined ? [] : typeof entry === 'function' ? [entry] : entry;
  }
}

/** The methods {@link NodeEmitter} adds to {@link Emitter}: the rest of Node's `EventEmitter`. */
export interface NodeEmitterMethods<Events extends { [K in keyof Events]: Listener }> {
  /** Same as `on`. */
  addListener<K extends keyof Events>(event: K, listener: Events[K]): this;
  /** Adds a listener before the others. */
  prependListener<K extends keyof Events>(event: K, listener: Events[K]): this;
  /** Adds a listener before the others, removed after its first call. */
  prependOnceListener<K extends keyof Events>(event: K, listener: Events[K]): this;
  /** Removes every listener of `event`, or of every event. */
  removeAllListeners(event?: keyof Events): this;
  /** The listeners of `event`, as they were added (a `once` listener itself, not its wrapper). */
  listeners<K extends keyof Events>(event: K): Events[K][];
  /** The listeners of `event`, `once` wrappers included. */
  rawListeners<K extends keyof Events>(event: K): Events[K][];
  /** The events that have listeners. */
  eventNames(): (keyof Events)[];
  /** Kept for Node's `EventEmitter` interface; this emitter never warns about the number of listeners. */
  setMaxListeners(n: number): this;
  /** The number last given to `setMaxListeners` (10 by default, as in Node); it limits nothing. */
  getMaxListeners(): number;
}

/**
 * Gives `target` (a subclass of {@link Emitter} that cannot extend {@link NodeEmitter}, such as a session)
 * the methods of {@link NodeEmitter}; declare them with `interface Target extends NodeEmitterMethods<...>`.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- any emitter class, whatever its events
export function withNodeEmitterMethods(target: abstract new (...args: any[]) => Emitter<any>): void {
  for (const name of Object.getOwnPropertyNames(NodeEmitter.prototype)) {
    if (name !== 'constructor') {
      Object.defineProperty(target.prototype, name, Object.getOwnPropertyDescriptor(NodeEmitter.prototype, name)!);
    }
  }
}
