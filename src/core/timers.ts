/**
 * Timer helpers shared by the session's parts.
 * @module
 */

/**
 * Periodic timers (keep-alive, probes, open timeouts) and the linger after closing do not keep a process
 * alive on their own; timers of a wait the application started (a ping, a close) do, until they settle.
 */
export function unref(timer: ReturnType<typeof setTimeout>): ReturnType<typeof setTimeout> {
  (timer as { unref?: () => void }).unref?.();
  return timer;
}

export const noop = (): void => {};
