/**
 * A small typed event emitter for the core (which may not import `node:events`). It has the methods of
 * Node's `EventEmitter` (`on`, `once`, `off`, `prependListener`, `listeners`, ...), so that helpers such as
 * `events.once(session, 'close')` work with it, type-checked too.
 * A listener that throws does not break the session: the error is rethrown from a microtask, where it
 * surfaces as an uncaught exception just as it would from any Node event.
 * @module
 */

type Listener = (...args: any[]) => void;

/** A `once` listener's wrapper remembers the listener, so that `off` and `listeners` find it. */
type OnceWrapper = Listener & { listener: Listener };

export class Emitter<Events extends { [K in keyof Events]: Listener }> {
  private listenerMap: Map<keyof Events, Listener[]> | null = null;
  private maxListeners = 10;

  /** Adds a listener. */
  on<K extends keyof Events>(event: K, listener: Events[K]): this {
    return this.add(event, listener, false);
  }

  /** Same as `on`. */
  addListener<K extends keyof Events>(event: K, listener: Events[K]): this {
    return this.add(event, listener, false);
  }

  /** Adds a listener before the others. */
  prependListener<K extends keyof Events>(event: K, listener: Events[K]): this {
    return this.add(event, listener, true);
  }

  /** Adds a listener that is removed after its first call. */
  once<K extends keyof Events>(event: K, listener: Events[K]): this {
    return this.add(event, this.onceWrapper(event, listener), false);
  }

  /** Adds a listener before the others, removed after its first call. */
  prependOnceListener<K extends keyof Events>(event: K, listener: Events[K]): this {
    return this.add(event, this.onceWrapper(event, listener), true);
  }

  /** Removes a listener (added with `on` or `once`). */
  off<K extends keyof Events>(event: K, listener: Events[K]): this {
    const list = this.listenerMap?.get(event);
    if (list === undefined) return this;
    const index = list.findIndex((l) => l === listener || (l as Partial<OnceWrapper>).listener === listener);
    if (index < 0) return this;
    const next = list.slice(0, index).concat(list.slice(index + 1));
    if (next.length === 0) this.listenerMap!.delete(event);
    else this.listenerMap!.set(event, next);
    return this;
  }

  /** Same as `off`. */
  removeListener<K extends keyof Events>(event: K, listener: Events[K]): this {
    return this.off(event, listener);
  }

  /** Removes every listener of `event`, or of every event. */
  removeAllListeners(event?: keyof Events): this {
    if (event === undefined) this.listenerMap = null;
    else this.listenerMap?.delete(event);
    return this;
  }

  /** How many listeners `event` has. */
  listenerCount(event: keyof Events): number {
    return this.listenerMap?.get(event)?.length ?? 0;
  }

  /** The listeners of `event`, as they were added (a `once` listener itself, not its wrapper). */
  listeners<K extends keyof Events>(event: K): Events[K][] {
    return (this.listenerMap?.get(event) ?? []).map((l) => ((l as Partial<OnceWrapper>).listener ?? l) as Events[K]);
  }

  /** The listeners of `event`, `once` wrappers included. */
  rawListeners<K extends keyof Events>(event: K): Events[K][] {
    return [...(this.listenerMap?.get(event) ?? [])] as Events[K][];
  }

  /** The events that have listeners. */
  eventNames(): (keyof Events)[] {
    return [...(this.listenerMap?.keys() ?? [])];
  }

  /** Kept for Node's `EventEmitter` interface; this emitter never warns about the number of listeners. */
  setMaxListeners(n: number): this {
    this.maxListeners = n;
    return this;
  }

  /** The number last given to `setMaxListeners` (10 by default, as in Node); it limits nothing. */
  getMaxListeners(): number {
    return this.maxListeners;
  }

  /**
   * Calls the listeners of `event`; returns whether there were any. Public, as on Node's `EventEmitter`; the
   * session emits its own events, and nothing inside it listens to them.
   */
  emit<K extends keyof Events>(event: K, ...args: Parameters<Events[K]>): boolean {
    const list = this.listenerMap?.get(event);
    if (list === undefined) return false;
    for (const listener of list) {
      try {
        listener.apply(this, args);
      } catch (error) {
        queueMicrotask(() => {
          throw error;
        });
      }
    }
    return true;
  }

  /** Hook for subclasses: a listener was just added. */
  protected onListenerAdded(_event: keyof Events): void {}

  private add(event: keyof Events, listener: Listener, first: boolean): this {
    this.listenerMap ??= new Map();
    const list = this.listenerMap.get(event);
    // Copy on write, so that emitting while listeners change sees a stable list.
    if (list === undefined) this.listenerMap.set(event, [listener]);
    else this.listenerMap.set(event, first ? [listener, ...list] : [...list, listener]);
    this.onListenerAdded(event);
    return this;
  }

  private onceWrapper<K extends keyof Events>(event: K, listener: Events[K]): OnceWrapper {
    const wrapper = ((...args: unknown[]) => {
      this.off(event, wrapper as unknown as Events[K]);
      listener.apply(this, args);
    }) as OnceWrapper;
    wrapper.listener = listener;
    return wrapper;
  }
}
