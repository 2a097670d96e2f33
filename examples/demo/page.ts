/**
 * The demo page's script (bundled by esbuild in server.ts): one WebSocket session, and over it an upload with
 * progress, a ticker whose latency is shown while the upload runs, hundreds of echo channels, the channels
 * the server pushes, and the session's RTT. Query parameters: `mib` (upload size, default 64), `echo`
 * (echo channels, default 300).
 */
import { type WebChannel, connectWebSocket } from '../../src/web/index.js';

const $ = (id: string): HTMLElement => document.getElementById(id)!;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

async function readAll(channel: WebChannel): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = channel.readable.getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    chunks.push(value);
    total += value.length;
  }
  const all = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    all.set(chunk, offset);
    offset += chunk.length;
  }
  return all;
}

/** The page's whole state of the demo, for the screenshot test to wait on. */
const status = { uploadDone: false, echoDone: false, pushed: 0, ticks: 0, maxTickDuringUpload: 0 };
(window as unknown as { demo: typeof status }).demo = status;
/** The page's timers, stopped when the session ends. */
const timers: ReturnType<typeof setInterval>[] = [];

async function main(): Promise<void> {
  const params = new URLSearchParams(location.search);
  // (Sizes are whole bytes and channels, at least one and at most a sane bound; anything else is the default.)
  const given = (name: string, fallback: number, unit: number, most: number): number => {
    const value = Math.round(Number(params.get(name) ?? fallback) * unit);
    return Number.isFinite(value) && value >= 1 && value <= most ? value / unit : fallback;
  };
  const mib = given('mib', 64, 1024 * 1024, 2 ** 40);
  const echoCount = given('echo', 300, 1, 10_000);
  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/mux`;
  $('url').textContent = url;
  // The transport's water marks lowered from 1 MiB / 256 KiB: a tick then waits behind at most 64 KiB of the
  // upload in the browser's own WebSocket buffer (which no scheduler can reorder), and the upload keeps its pace.
  const session = await connectWebSocket(url, {
    keepAliveInterval: 5000,
    highWaterMark: 64 * 1024,
    lowWaterMark: 16 * 1024,
  });
  $('state').textContent = 'open';
  session.on('close', (error) => {
    // The figures on screen are the last ones measured: greyed out, the timers stopped, a way back offered.
    for (const timer of timers) clearInterval(timer);
    document.body.classList.add('stale');
    $('state').textContent = error ? `disconnected: ${error.message}` : 'closed';
    if (!status.uploadDone) $('upload-state').textContent = 'stopped: the connection ended';
    offerReconnect();
  });

  // RTT and open channels, once a second.
  timers.push(
    setInterval(() => {
      session.ping().then(
        (rtt) => {
          $('rtt').textContent = rtt.toFixed(2);
        },
        () => {},
      );
      $('channels').textContent = String(session.channelCount);
    }, 1000),
  );
  void session.ping().then((rtt) => {
    $('rtt').textContent = rtt.toFixed(2);
  });

  // (Each ends with the session; its 'close' listener tells the page why.)
  acceptPushed(session).catch(() => {});
  let uploading = true;
  runTicker(session, () => uploading).catch(() => {});
  await upload(session, mib);
  uploading = false;
  await echoMany(session, echoCount);
}

/** Shows every channel the server opens, with the last thing it said. */
async function acceptPushed(session: Awaited<ReturnType<typeof connectWebSocket>>): Promise<void> {
  const table = $('pushed') as HTMLTableElement;
  table.innerHTML = '';
  for await (const channel of session) {
    status.pushed++;
    const row = table.insertRow();
    row.insertCell().textContent = `channel ${channel.id}`;
    const text = row.insertCell();
    channel.writable.close().catch(() => {}); // the page has nothing to send on these
    void (async () => {
      const reader = channel.readable.getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        text.textContent = decoder.decode(value);
      }
    })().catch(() => {});
  }
}

/** Sends a timestamp 10 times a second on its own echo channel and shows each one's round trip. */
async function runTicker(
  session: Awaited<ReturnType<typeof connectWebSocket>>,
  uploading: () => boolean,
): Promise<void> {
  const channel = session.dial();
  const writer = channel.writable.getWriter();
  await writer.write(encoder.encode('E'));
  const reader = channel.readable.getReader();
  const sentAt = new Map<number, number>();
  let next = 0;
  timers.push(
    setInterval(() => {
      const id = next++;
      sentAt.set(id, performance.now());
      const message = new Uint8Array(4);
      new DataView(message.buffer).setUint32(0, id);
      writer.write(message).catch(() => {}); // (once the session ended, the 'close' listener says so)
    }, 100),
  );
  let pending = new Uint8Array(0);
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    const joined = new Uint8Array(pending.length + value.length);
    joined.set(pending);
    joined.set(value, pending.length);
    let offset = 0;
    for (; offset + 4 <= joined.length; offset += 4) {
      const id = new DataView(joined.buffer, offset, 4).getUint32(0);
      const latency = performance.now() - (sentAt.get(id) ?? performance.now());
      sentAt.delete(id);
      status.ticks++;
      $('tick-now').textContent = latency.toFixed(1);
      $('ticks').textContent = String(status.ticks);
      if (uploading() && latency > status.maxTickDuringUpload) {
        status.maxTickDuringUpload = latency;
        $('tick-max-upload').textContent = latency.toFixed(1);
      }
    }
    pending = joined.slice(offset);
  }
}

/** Uploads `mib` MiB on one channel with a progress bar; the server answers the byte count it received. */
async function upload(session: Awaited<ReturnType<typeof connectWebSocket>>, mib: number): Promise<void> {
  const total = Math.round(mib * 1024 * 1024);
  $('upload-total').textContent = String(+(total / 1048576).toPrecision(3));
  const channel = session.dial();
  const writer = channel.writable.getWriter();
  await writer.write(encoder.encode('U'));
  const answer = readAll(channel);
  answer.catch(() => {}); // (heard below; a write failing first leaves the function before that)
  const piece = new Uint8Array(256 * 1024);
  crypto.getRandomValues(piece.subarray(0, 65536));
  const started = performance.now();
  $('upload-state').textContent = 'uploading';
  for (let sent = 0; sent < total;) {
    // Each write its own array (the channel sends large writes in place); the last one cut to what is left.
    const part = piece.slice(0, Math.min(piece.length, total - sent));
    await writer.write(part);
    sent += part.length;
    const seconds = (performance.now() - started) / 1000;
    $('upload-done').textContent = String(+(sent / 1048576).toFixed(1));
    $('upload-bar').style.width = `${(100 * sent) / total}%`;
    $('upload-rate').textContent = (sent / 1048576 / Math.max(seconds, 0.001)).toFixed(0);
  }
  await writer.close();
  const received = Number(decoder.decode(await answer));
  $('upload-state').textContent =
    received === total ? 'done: the server received every byte' : `server received ${received}`;
  status.uploadDone = received === total;
}

/** Opens `count` channels at once, each echoing a few random kilobytes, and colours a square per channel. */
async function echoMany(session: Awaited<ReturnType<typeof connectWebSocket>>, count: number): Promise<void> {
  $('echo-count').textContent = String(count);
  const grid = $('echo-grid');
  const squares = Array.from({ length: count }, () => grid.appendChild(document.createElement('span')));
  let ok = 0;
  const started = performance.now();
  await Promise.all(
    squares.map(async (square, i) => {
      const data = crypto.getRandomValues(new Uint8Array(1024 + ((i * 997) % 8192)));
      const channel = session.dial();
      const writer = channel.writable.getWriter();
      const message = new Uint8Array(data.length + 1);
      message[0] = 0x45; // E
      message.set(data, 1);
      const [echoed] = await Promise.all([readAll(channel), writer.write(message).then(() => writer.close())]);
      const exact = echoed.length === data.length && echoed.every((byte, j) => byte === data[j]);
      square.className = exact ? 'ok' : 'bad';
      if (exact) $('echo-ok').textContent = String(++ok);
    }),
  );
  $('echo-time').textContent = ` · ${count} channels in ${Math.round(performance.now() - started)} ms`;
  status.echoDone = ok === count;
}

main().catch((error: unknown) => {
  // (A session that ended has said so already: its 'close' listener keeps its words.)
  if (!document.body.classList.contains('stale')) {
    $('state').textContent = `error: ${(error as Error)?.message ?? String(error)}`;
  }
  offerReconnect();
});

/** Shows the Reconnect button: it reloads the page once the server answers again (else says it does not). */
function offerReconnect(): void {
  const again = $('reconnect') as HTMLButtonElement;
  again.hidden = false;
  again.onclick = () => {
    again.disabled = true;
    // (Any answer is not the demo's: a proxy in front of a server that is down answers 502.)
    fetch(location.href, { method: 'HEAD', cache: 'no-store' }).then(
      (response) => {
        if (response.ok) location.reload();
        else unreachable(`HTTP ${response.status}`);
      },
      () => unreachable('no answer'),
    );
  };
  const unreachable = (why: string): void => {
    $('state').textContent = `the server is still unreachable (${why})`;
    again.disabled = false;
  };
}
