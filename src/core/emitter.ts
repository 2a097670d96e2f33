/**
 * A small typed event emitter for the core (which may not import `node:events`). Its method names match
 * Node's `EventEmitter` (`on`, `once`, `off`, `addListener`, `removeListener`, `listenerCount`), so helpers
 * such as `events.once(session, 'close')` work with it.
 * A listener that throws does not break the session: the error is rethrown from a microtask, where it
 * surfaces as an uncaught exception just as it would from any Node event.
 * @module
 */

type Listener = (...args: any[]) => void;

export class Emitter<Events extends { [K in keyof Events]: Listener }> {
  private listeners: Map<keyof Events, Listener[]> | null = null;

  /** Adds a listener. */
  on<K extends keyof Events>(event: K, listener: Events[K]): this {
    this.listeners ??= new Map();
    const list = this.listeners.get(event);
    // Copy on write, so that emitting while listeners change sees a stable list.
    this.listeners.set(event, list === undefined ? [listener] : [...list, listener]);
    this.onListenerAdded(event);
    return this;
  }

  /** Same as `on`. */
  addListener<K extends keyof Events>(event: K, listener: Events[K]): this {
    return this.on(event, listener);
  }

  /** Adds a listener that is removed after its first call. */
  once<K extends keyof Events>(event: K, listener: Events[K]): this {
    const wrapper = ((...args: unknown[]) => {
      this.off(event, wrapper as Events[K]);
      listener(...args);
    }) as Events[K] & { listener?: Listener };
    wrapper.listener = listener;
    return this.on(event, wrapper);
  }

  /** Removes a listener (added with `on` or `once`). */
  off<K extends keyof Events>(event: K, listener: Events[K]): this {
    const list = this.listeners?.get(event);
    if (list === undefined) return this;
    const index = list.findIndex((l) => l === listener || (l as { listener?: Listener }).listener === listener);
    if (index < 0) return this;
    const next = list.slice(0, index).concat(list.slice(index + 1));
    if (next.length === 0) this.listeners!.delete(event);
    else this.listeners!.set(event, next);
    return this;
  }

  /** Same as `off`. */
  removeListener<K extends keyof Events>(event: K, listener: Events[K]): this {
    return this.off(event, listener);
  }

  /** Removes every listener of `event`, or of every event. */
  removeAllListeners(event?: keyof Events): this {
    if (event === undefined) this.listeners = null;
    else this.listeners?.delete(event);
    return this;
  }

  /** How many listeners `event` has. */
  listenerCount(event: keyof Events): number {
    return this.listeners?.get(event)?.length ?? 0;
  }

  /** Calls the listeners of `event`; returns whether there were any. */
  protected emit<K extends keyof Events>(event: K, ...args: Parameters<Events[K]>): boolean {
    const list = this.listeners?.get(event);
    if (list === undefined) return false;
    for (const listener of list) {
      try {
        listener(...args);
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
}
