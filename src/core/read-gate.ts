/**
 * Whether the session reads its transport: it stops while something holds reading back (session memory at
 * its bound, a channel over its buffer on a codec without windows, a full accept queue on a codec that
 * cannot refuse) and reads again once nothing does. While stopped it probes, so that a cut transport is
 * still noticed: yamux reads until a ping's answer (the keep-alive starts that probe), the multiplex format,
 * which has no ping, reads {@link PROBE_CHUNK} bytes every `keepAliveTimeout`.
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
  private probeBytes = 0;
  /** Bytes a multiplex session may still read while paused in this pause (see {@link PROBE_CHUNK}). */
  private probeBudget = 0;
  private probeTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly transport: Transport,
    private readonly options: ResolvedOptions,
    /** The codec has pings (then the keep-alive probes, not this timer). */
    private readonly hasPing: boolean,
    private readonly memory: SessionMemory,
    private readonly isClosed: () => boolean,
  ) {}

  /** Stops reading the transport (memory bound, a channel over its buffer, a full accept queue). */
  pause(): void {
    if (this.paused || this.isClosed()) return;
    this.paused = true;
    this.probeBudget = Math.max(4 * PROBE_CHUNK, this.options.maxSessionBuffered / 4);
    if (!this.probing) this.transport.pause();
    this.armProbeTimer();
  }

  /** Reads again once nothing holds reading back (memory below its soft limit, no channel over, queue not full). */
  resume(): void {
    if (!this.paused || this.overfull > 0 || this.acceptFull || this.memory.underPressure || this.isClosed()) return;
    this.paused = false;
    if (this.probeTimer !== undefined) clearTimeout(this.probeTimer);
    this.probeTimer = undefined;
    const wasProbing = this.probing;
    this.probing = false;
    this.probeBytes = 0;
    if (!wasProbing) this.transport.resume();
  }

  /**
   * Reads while paused, to hear the peer: `bytes` more bytes (multiplex), or until the probe ping's answer (0;
   * yamux: the peer can send no more data than the window credit it already holds).
   */
  startProbe(bytes: number): void {
    this.probing = true;
    this.probeBytes = bytes;
    this.transport.resume();
  }

  /** The probe heard what it waited for: pause again if reading is still held back. */
  endProbe(): void {
    this.probing = false;
    this.probeBytes = 0;
    if (!this.paused || this.isClosed()) return;
    this.transport.pause();
    this.armProbeTimer();
  }

  /** `bytes` arrived from the transport: a byte-counted probe ends once it has read its share. */
  onRead(bytes: number): void {
    if (this.probeBytes > 0 && (this.probeBytes -= bytes) <= 0 && this.probing) this.endProbe();
  }

  /** The session has ended: no more probes. */
  stop(): void {
    if (this.probeTimer !== undefined) clearTimeout(this.probeTimer);
    this.probeTimer = undefined;
  }

  /**
   * The multiplex format has no ping: a paused session reads {@link PROBE_CHUNK} bytes every `keepAliveTimeout`,
   * so a cut transport (its end of file or reset behind the data) is noticed; at most a quarter of
   * `maxSessionBuffered` in one pause, after which it waits for the application. (yamux probes with pings.)
   */
  private armProbeTimer(): void {
    if (this.hasPing || this.probeTimer !== undefined || this.options.keepAliveInterval === 0) return;
    this.probeTimer = unref(setTimeout(() => {
      this.probeTimer = undefined;
      if (!this.paused || this.probing || this.isClosed() || this.probeBudget <= 0) return;
      const bytes = Math.min(PROBE_CHUNK, this.probeBudget);
      this.probeBudget -= bytes;
      this.startProbe(bytes);
    }, this.options.keepAliveTimeout));
  }
}
