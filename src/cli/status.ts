/**
 * What the command tells its user: events (a line on stderr each, or with `--json` one JSON object per line
 * on stdout), and a live status line refreshed on a TTY (session up/down, RTT, forwarded connections open,
 * bytes/s each way, reconnects), which `--json` replaces with a periodic `status` event.
 * @module
 */
import type { Socket } from 'node:net';

/** A snapshot for the status line. */
export interface StatusSample {
  up: boolean;
  rtt: number | undefined;
  /**
   * The sessions' open channels, control channels included (`--json` only: the line counts forwarded
   * connections, from the {@link Traffic}).
   */
  channels: number;
  reconnects: number;
}

/** How often the TTY status line is redrawn. */
const LINE_INTERVAL_MS = 1000;
/** How often `--json` writes a `status` event. */
const JSON_STATUS_INTERVAL_MS = 5000;

/**
 * Bytes carried by the forwarded sockets, each way. Read from the sockets' own counters when sampled, so
 * the data path pays nothing per chunk.
 */
export class Traffic {
  readonly #live = new Set<Socket>();
  #closedIn = 0;
  #closedOut = 0;

  /** Counts `socket` (a forwarded connection's local end) until it closes. */
  track(socket: Socket): void {
    this.#live.add(socket);
    socket.once('close', () => {
      this.#live.delete(socket);
      this.#closedIn += socket.bytesRead;
      this.#closedOut += socket.bytesWritten;
    });
  }

  /** Connections being forwarded now. */
  get connections(): number {
    return this.#live.size;
  }

  /** Bytes read from forwarded sockets (into the tunnel) and written to them (out of it), so far. */
  totals(): { in: number; out: number } {
    let into = this.#closedIn;
    let out = this.#closedOut;
    for (const socket of this.#live) {
      into += socket.bytesRead;
      out += socket.bytesWritten;
    }
    return { in: into, out };
  }
}

function rate(bytesPerSecond: number): string {
  if (bytesPerSecond >= 1e9) return `${(bytesPerSecond / 1e9).toFixed(2)} GB/s`;
  if (bytesPerSecond >= 1e6) return `${(bytesPerSecond / 1e6).toFixed(1)} MB/s`;
  if (bytesPerSecond >= 1e3) return `${(bytesPerSecond / 1e3).toFixed(1)} kB/s`;
  return `${Math.round(bytesPerSecond)} B/s`;
}

/**
 * Characters a human log line must not carry as they are: C0 controls (a newline would forge a line of its
 * own, ESC starts a terminal's escape sequences), DEL, the C1 controls (some terminals take U+009B as ESC [),
 * the line and paragraph separators, and the bidirectional overrides and isolates (they reorder what a
 * terminal shows). Peers' strings reach messages: a host asked for, a refusal's message.
 */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/** `text` with every {@link UNSAFE} character written as an escape (`\n`, `\x1b`, `\u202e`), for one log line. */
export function escapeControls(text: string): string {
  return text.replace(UNSAFE, (c) => {
    if (c === '\n') return '\\n';
    if (c === '\r') return '\\r';
    if (c === '\t') return '\\t';
    const code = c.charCodeAt(0);
    return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}

/**
 * `value` as one line of JSON with every {@link UNSAFE} character escaped: `JSON.stringify` escapes only the C0
 * controls, and leaves DEL, the C1 controls, the line separators and the bidirectional overrides as they are
 * (they can only be inside strings there, so `\uXXXX` in their place is the same JSON value).
 */
export function jsonLine(value: unknown): string {
  return JSON.stringify(value).replace(UNSAFE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Writes events and the status line; one per process. */
export class Reporter {
  readonly #json: boolean;
  readonly #out: NodeJS.WritableStream;
  readonly #err: NodeJS.WritableStream & { isTTY?: boolean };
  readonly #interval: number;
  #timer: NodeJS.Timeout | undefined;
  #line = '';

  /**
   * `out` gets the JSON events, `err` the human lines and the status line (drawn only when `err.isTTY`).
   * `intervalMs` overrides how often the status is refreshed (tests).
   */
  constructor(
    json: boolean,
    out: NodeJS.WritableStream = process.stdout,
    err: NodeJS.WritableStream = process.stderr,
    intervalMs?: number,
  ) {
    this.#json = json;
    this.#out = out;
    this.#err = err;
    this.#interval = intervalMs ?? (json ? JSON_STATUS_INTERVAL_MS : LINE_INTERVAL_MS);
  }

  /**
   * Reports one event. `message` is the human sentence; `fields` are the structured details (in `--json`
   * mode they are written with `event`, `time` and `message`, escaping every control character: {@link jsonLine}). On
   * stderr the message's control characters are escaped ({@link escapeControls}): it may quote a peer.
   */
  event(event: string, message: string, fields: Record<string, unknown> = {}): void {
    if (this.#json) {
      this.#out.write(`${jsonLine({ time: new Date().toISOString(), event, message, ...fields })}\n`);
      return;
    }
    this.#clearLine();
    this.#err.write(`muxwire: ${escapeControls(message)}\n`);
    this.#drawLine();
  }

  /** Starts the periodic status (a TTY line, or `status` events with `--json`); `sample` is read each time. */
  startStatus(sample: () => StatusSample, traffic: Traffic): void {
    if (this.#timer !== undefined) return;
    const tty = this.#err.isTTY === true;
    if (!this.#json && !tty) return;
    let last = traffic.totals();
    let lastTime = performance.now();
    this.#timer = setInterval(() => {
      const now = performance.now();
      const totals = traffic.totals();
      const seconds = Math.max((now - lastTime) / 1000, 1e-3);
      const inRate = (totals.in - last.in) / seconds;
      const outRate = (totals.out - last.out) / seconds;
      last = totals;
      lastTime = now;
      const s = sample();
      if (this.#json) {
        this.event('status', 'status', {
          up: s.up,
          rttMs: s.rtt,
          channels: s.channels,
          connections: traffic.connections,
          inBytesPerSecond: Math.round(inRate),
          outBytesPerSecond: Math.round(outRate),
          inBytes: totals.in,
          outBytes: totals.out,
          reconnects: s.reconnects,
        });
        return;
      }
      this.#clearLine();
      this.#line =
        `[${s.up ? 'up' : 'down'}] rtt ${s.rtt === undefined ? '-' : `${s.rtt.toFixed(1)} ms`}` +
        ` · ${traffic.connections} connections · in ${rate(inRate)} · out ${rate(outRate)} · ${s.reconnects} reconnects`;
      this.#drawLine();
    }, this.#interval);
    this.#timer.unref();
  }

  /** Stops the status and clears its line. */
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#clearLine();
    this.#line = '';
  }

  #clearLine(): void {
    if (this.#line !== '') this.#err.write('\r\x1b[K');
  }

  #drawLine(): void {
    if (this.#line !== '') this.#err.write(this.#line);
  }
}

/**
 * The last event of a shutdown, `stopped` (with `reset`: how many forwarded connections the drain left
 * unfinished, reset rather than ended), then the status stops.
 */
export function reportStopped(reporter: Reporter, reset: number): void {
  reporter.event(
    'stopped',
    reset === 0
      ? 'stopped'
      : `stopped; ${reset} forwarded connection(s) not finished within the drain timeout were reset`,
    { reset },
  );
  reporter.stop();
}
