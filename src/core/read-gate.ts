/**
 * Whether the session reads its transport: it stops while something holds reading back (session memory at
 * its bound, a channel over its buffer on a codec without windows, a full accept queue on a codec that
 * cannot refuse) and reads again once nothing does. While stopped it probes, so that a cut transport is
 * still noticed and the peer's pings are answered: yamux reads until a ping's answer (every half
 * `keepAliveTimeout`, and at a ping's deadline), the multiplex format, which has no ping, reads
 * {@link PROBE_CHUNK} bytes every `keepAliveTimeout`.
 *
 * It owns the pause, the probe and the counts of what holds reading back; it only pauses and resumes the
 * transport, and never touches channels or frames.
 * @module
 */
import type { SessionMemory } from './flow.js';
import type { ResolvedOptions } from './options.js';
import type { Transport } from './transport.js';
import { unref } from './timers.js';

/**
 * A session that stopped reading reads this many bytes at a time when it probes the transport for a cut
 * (multiplex): enough to reach an end of file or a reset behind a little data, little enough to leave the
 * bound nearly where it was.
 */
const PROBE_CHUNK = 64 * 1024;

export class ReadGate {
  /** Reading is paused (see `pause`). */
  paused = false;
  /**
   * Reading resumed while paused, to probe the transport: until the probe ping's answer arrives (yamux, bounded
   * by the window credit already granted), or for `probeBytes` more bytes (multiplex, no windows).
   */
  probing = false;
  /** Channels over their buffer limit on a codec without windows (reading pauses while any is). */
  overfull = 0;
  /** The accept queue is full on a codec that cannot refuse: reading waits for the application to accept. */
  acceptFull = false;
  #probeBytes = 0;
  /** Bytes a multiplex session may still read while paused in this pause (see {@link PROBE_CHUNK}). */
  #probeBudget = 0;
  /** The bytes a multiplex session's probes may read in one pause (`#probeBudget` at its start). */
  #probeAllowance = 0;
  /**
   * The chunks' cost beyond their bytes (`memory.held`) at which this pause's probes stop reading: a peer can
   * send no more bytes than its window credit, but as many frames of one byte each as that allows, and each
   * chunk left unread costs ~100-200 bytes of its own (see `CHUNK_COST`). The share is eight times the credit
   * the peer held at the pause's first probe, between a quarter of `maxSessionBuffered` and twice it: credit in
   * frames of 28 bytes or more fits (up to that ceiling), frames of a byte stop at a thirtieth of what they would
   * cost, and channels opened only to raise the credit raise it no further than the ceiling. On the multiplex
   * format, without windows, the bytes its probes may read in the pause stand for the credit (eight times them,
   * whatever the bound), so frames of 28 bytes or more fit there too. Worked out at the first probe (-1 until
   * then: a pause that never probes never sums the channels' credit).
   */
  #probeHeldCap = -1;
  /** `memory.held` when reading paused. */
  #heldAtPause = 0;
  #probeTimer: ReturnType<typeof setTimeout> | undefined;
  /**
   * Reading waits for a later turn of the event loop (this turn's share is spent, see `TurnBudget`): the
   * transport is paused meanwhile, whatever else holds reading back or lets it go on.
   */
  #heldForTurn = false;
  /** When reading last resumed after a pause: the keep-alive deadline does not count time spent not reading. */
  resumedAt = 0;
  /**
   * Since when the transport has been read without a break (`performance.now()`; Infinity while it is not read):
   * a ping's answer is an RTT only if the ping left after this, since an answer that waited unread measures the
   * pause.
   */
  readingSince = 0;

  readonly #transport: Transport;
  /** The transport cannot stop the peer's bytes (see `Transport.cannotPause`). */
  readonly cannotPause: boolean;
  readonly #options: ResolvedOptions;
  readonly #probePing: (() => void) | null;
  readonly #memory: SessionMemory;
  readonly #isClosed: () => boolean;
  readonly #credit: () => number;
  constructor(
    transport: Transport,
    options: ResolvedOptions,
    /**
     * Sends a ping (or keeps the one in flight) for a probe to read up to its answer; null on a codec without
     * pings (then a probe reads a number of bytes).
     */
    probePing: (() => void) | null,
    memory: SessionMemory,
    isClosed: () => boolean,
    /** The window credit the peer holds now, every channel's together (read when reading pauses). */
    credit: () => number,
  ) {
    this.#transport = transport;
    this.cannotPause = transport.cannotPause === true;
    this.#options = options;
    this.#probePing = probePing;
    this.#memory = memory;
    this.#isClosed = isClosed;
    this.#credit = credit;
  }

  /** Stops reading the transport (memory bound, a channel over its buffer, a full accept queue). */
  pause(): void {
    if (this.paused || this.#isClosed()) return;
    this.paused = true;
    this.#probeBudget = this.#probeAllowance = Math.max(4 * PROBE_CHUNK, this.#options.maxSessionBuffered / 4);
    this.#heldAtPause = this.#memory.held;
    this.#probeHeldCap = -1;
    if (!this.probing) this.#stopReading();
    this.#armProbeTimer();
  }

  /** Reads again once nothing holds reading back (memory below its soft limit, no channel over, queue not full). */
  resume(): void {
    if (!this.paused || this.overfull > 0 || this.acceptFull || this.#memory.underPressure || this.#isClosed()) return;
    this.paused = false;
    if (this.#probeTimer !== undefined) clearTimeout(this.#probeTimer);
    this.#probeTimer = undefined;
    const wasProbing = this.probing;
    this.probing = false;
    this.#probeBytes = 0;
    if (wasProbing) return;
    this.resumedAt = performance.now(); // an answer that waited unread may not have arrived yet
    if (this.#heldForTurn) return; // (`releaseTurn` resumes)
    this.readingSince = this.resumedAt;
    this.#transport.resume();
  }

  /**
   * Stops reading until `releaseTurn()`: this turn's share of the event loop is spent. A transport that may drop
   * what it holds for a paused reader at its close is paused only when `evenIfDropping` (the decoder holds a lot:
   * the memory bound's pause, with its risk); until then the decoder holds what comes. Not a break in reading
   * for RTTs: an answer held a turn or two measures that too, but a session whose reading fills its slice holds
   * at nearly every turn, and would otherwise measure no RTT at all (window auto-tuning waits for one).
   */
  holdForTurn(evenIfDropping = false): void {
    if (this.#heldForTurn || (this.#transport.dropsPausedData === true && !evenIfDropping)) return;
    this.#heldForTurn = true;
    if (!this.paused || this.probing) this.#transport.pause();
  }

  /** Reads again after `holdForTurn()`, unless something else holds reading back. */
  releaseTurn(): void {
    if (!this.#heldForTurn) return;
    this.#heldForTurn = false;
    if ((!this.paused || this.probing) && !this.#isClosed()) {
      // (A pause or probe that ended meanwhile left reading to resume here.)
      if (this.readingSince === Infinity) this.readingSince = performance.now();
      this.#transport.resume();
    }
  }

  /**
   * Reads while paused, to hear the peer: `bytes` more bytes (multiplex), or until the probe ping's answer (0;
   * yamux: the peer can send no more data than the window credit it already holds).
   */
  startProbe(bytes: number): boolean {
    if (this.probeSpent) return false;
    this.probing = true;
    this.#probeBytes = bytes;
    if (!this.#heldForTurn) {
      this.readingSince = performance.now();
      this.#transport.resume();
    }
    return true;
  }

  /**
   * This pause's probes may read no more (see `#probeHeldCap`): reading waits for the application, and a ping's
   * answer behind what the peer sent can no longer be read (keep-alive then fails the session, saying so).
   */
  get probeSpent(): boolean {
    if (!this.paused) return false;
    if (this.#probeHeldCap < 0) {
      const bound = this.#options.maxSessionBuffered;
      // (On the multiplex format, eight times the allowance: twice the bound, or 2 MiB for bounds under 1 MiB,
      // since the allowance is at least 256 KiB.)
      this.#probeHeldCap =
        this.#heldAtPause +
        (this.#probePing === null
          ? 8 * this.#probeAllowance
          : Math.max(bound / 4, Math.min(8 * this.#credit(), 2 * bound)));
    }
    return this.#memory.held >= this.#probeHeldCap;
  }

  /** The probe heard what it waited for (or spent its share): pause again if reading is still held back. */
  endProbe(): void {
    this.probing = false;
    this.#probeBytes = 0;
    if (!this.paused || this.#isClosed()) return;
    this.#stopReading();
    this.#armProbeTimer();
  }

  #stopReading(): void {
    this.readingSince = Infinity;
    this.#transport.pause();
  }

  /** `bytes` arrived from the transport: a byte-counted probe ends once it has read its share. */
  onRead(bytes: number): void {
    if (this.#probeBytes > 0 && (this.#probeBytes -= bytes) <= 0 && this.probing) this.endProbe();
  }

  /** The session has ended: no more probes. */
  stop(): void {
    if (this.#probeTimer !== undefined) clearTimeout(this.#probeTimer);
    this.#probeTimer = undefined;
  }

  /**
   * A paused session probes the transport now and then, so that it hears the peer:
   * - yamux: every half `keepAliveTimeout`, a ping and reading until its answer. The peer's own pings, waiting
   *   unread, are answered on the way, so a peer whose deadline comes before ours does not take this session
   *   for dead; the peer can send no more data than the window credit it already holds.
   * - multiplex (no ping): {@link PROBE_CHUNK} bytes every `keepAliveTimeout` (unless `keepAliveInterval` is
   *   0), so a cut transport (its end of file or reset behind the data) is noticed; at most a quarter of
   *   `maxSessionBuffered` (and at least 256 KiB) in one pause, after which it waits for the application; the
   *   chunks' costs bound it as on yamux (`probeSpent`), frames of 28 bytes or more within it.
   */
  #armProbeTimer(): void {
    if (this.#probeTimer !== undefined) return;
    const probePing = this.#probePing;
    if (probePing === null && this.#options.keepAliveInterval === 0) return;
    const period = probePing !== null ? this.#options.keepAliveTimeout / 2 : this.#options.keepAliveTimeout;
    this.#probeTimer = unref(
      setTimeout(() => {
        this.#probeTimer = undefined;
        if (!this.paused || this.probing || this.#isClosed()) return;
        if (probePing !== null) {
          // After the start: the ping it sends (or sends again) leaves while the transport is read. Refused while
          // the probes' share is spent: looked at again later (the application may read meanwhile).
          if (this.startProbe(0)) probePing();
          else this.#armProbeTimer();
          return;
        }
        if (this.#probeBudget <= 0) return;
        const bytes = Math.min(PROBE_CHUNK, this.#probeBudget);
        // Refused while the probes' share of chunk costs is spent: looked at again later, the bytes kept.
        if (this.startProbe(bytes)) this.#probeBudget -= bytes;
        else this.#armProbeTimer();
      }, period),
    );
  }
}
