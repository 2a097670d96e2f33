/**
 * The server's bound on connections in their handshake: {@link MAX_PENDING_HANDSHAKES} at once in all, and
 * {@link MAX_PENDING_HANDSHAKES_PER_ADDRESS} from any one client address, so that one host that opens
 * connections and stays silent cannot take every place and lock the other clients out (as OpenSSH's
 * `MaxStartups` and `PerSourceMaxStartups`).
 * @module
 */
import { MAX_PENDING_HANDSHAKES, MAX_PENDING_HANDSHAKES_PER_ADDRESS } from './protocol.js';

/** The client address of a `host:port` or `[v6]:port` string, as `formatAddress` writes them. */
export function addressOf(remote: string): string {
  const colon = remote.lastIndexOf(':');
  const host = colon < 0 ? remote : remote.slice(0, colon);
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

export class HandshakeSlots {
  #total = 0;
  readonly #byAddress = new Map<string, number>();

  /**
   * Takes a place for a connection from `remote` (`host:port`); returns why there is none (for the log), or
   * undefined when it got one, to be given back with {@link give}.
   */
  take(remote: string): string | undefined {
    if (this.#total >= MAX_PENDING_HANDSHAKES) return `${MAX_PENDING_HANDSHAKES} handshakes already in progress`;
    const address = addressOf(remote);
    const count = this.#byAddress.get(address) ?? 0;
    if (count >= MAX_PENDING_HANDSHAKES_PER_ADDRESS) {
      return `${MAX_PENDING_HANDSHAKES_PER_ADDRESS} handshakes from ${address} already in progress`;
    }
    this.#total++;
    this.#byAddress.set(address, count + 1);
    return undefined;
  }

  /** Gives back the place a connection from `remote` took. */
  give(remote: string): void {
    const address = addressOf(remote);
    const count = this.#byAddress.get(address);
    if (count === undefined) return;
    this.#total--;
    if (count <= 1) this.#byAddress.delete(address);
    else this.#byAddress.set(address, count - 1);
  }
}
