/**
 * The server's bound on connections in their handshake: {@link MAX_PENDING_HANDSHAKES} at once in all, and
 * {@link MAX_PENDING_HANDSHAKES_PER_ADDRESS} from any one client address (a global IPv6 one's /64), so that one host that opens
 * connections and stays silent cannot take every place and lock the other clients out (as OpenSSH's
 * `MaxStartups` and `PerSourceMaxStartups`).
 * @module
 */
import { isIPv6 } from 'node:net';
import { MAX_PENDING_HANDSHAKES, MAX_PENDING_HANDSHAKES_PER_ADDRESS } from './protocol.js';

/** The client address of a `host:port` or `[v6]:port` string, as `formatAddress` writes them. */
export function addressOf(remote: string): string {
  const colon = remote.lastIndexOf(':');
  const host = colon < 0 ? remote : remote.slice(0, colon);
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

/**
 * Whose handshakes an address's count against: an IPv4 address its own (an IPv4-mapped IPv6 one too); a global
 * IPv6 address its /64 (a host is commonly given a whole /64, so counting each address alone would let one
 * take every place), except a Teredo one (2001::/32, its server's clients alike); any other IPv6 address its
 * own, zone included (link-local addresses of different links, NAT64's 64:ff9b::/96, which embeds a different
 * IPv4 host in each, unique local networks).
 */
export function sourceOf(address: string): string {
  const plain = address.replace(/%.*$/, '').toLowerCase(); // (a zone names the interface, not the host)
  if (!isIPv6(plain)) return address;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(plain);
  if (mapped !== null) return mapped[1]!;
  // A dotted IPv4 tail (`::1.2.3.4`) is two groups: written as them, so that `::` stands for the right count.
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(plain);
  const hex = dotted === null ? plain : plain.slice(0, dotted.index) + ipv4Groups(dotted);
  const [head = '', tail] = hex.split('::');
  const front = head === '' ? [] : head.split(':');
  const back = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = [...front, ...Array<string>(Math.max(0, 8 - front.length - back.length)).fill('0'), ...back].map(
    (group) => Number.parseInt(group, 16),
  );
  const global = (groups[0]! & 0xe000) === 0x2000 && !(groups[0] === 0x2001 && groups[1] === 0);
  if (!global) return address.toLowerCase();
  return `${groups
    .slice(0, 4)
    .map((group) => group.toString(16))
    .join(':')}::/64`;
}

/** The two hexadecimal groups of a dotted IPv4 address's four numbers. */
function ipv4Groups(parts: RegExpExecArray): string {
  const [a, b, c, d] = [parts[1], parts[2], parts[3], parts[4]].map(Number) as [number, number, number, number];
  return `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
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
    const source = sourceOf(addressOf(remote));
    const count = this.#byAddress.get(source) ?? 0;
    if (count >= MAX_PENDING_HANDSHAKES_PER_ADDRESS) {
      return `${MAX_PENDING_HANDSHAKES_PER_ADDRESS} handshakes from ${source} already in progress`;
    }
    this.#total++;
    this.#byAddress.set(source, count + 1);
    return undefined;
  }

  /** Gives back the place a connection from `remote` took. */
  give(remote: string): void {
    const source = sourceOf(addressOf(remote));
    const count = this.#byAddress.get(source);
    if (count === undefined) return;
    this.#total--;
    if (count <= 1) this.#byAddress.delete(source);
    else this.#byAddress.set(source, count - 1);
  }
}
