/**
 * `npm run demo`: one Node process serves a page (bundled by esbuild from page.ts) and accepts muxwire
 * sessions over WebSocket at `/mux`. Everything the page shows travels over that one WebSocket:
 * - channels the page dials start with one byte naming a service: `E` echo (the echo channels and the
 *   ticker), `U` upload (the server counts the bytes and answers the total); a channel starting with any
 *   other byte is echoed whole, that byte included (so the README's page script works here as written);
 * - channels the server pushes: a clock, the server's view of the session, and a greeting.
 * The bundled `muxwire/web` is also served at `/muxwire-web.js`, for the README's page script.
 * @module
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { type Channel, type Session, createWebSocketServer } from '../../src/index.js';

const here = path.dirname(fileURLToPath(import.meta.url));

const PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>muxwire in the browser</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #1b1f24; background: #f6f7f9; }
  h1 { font-size: 20px; margin: 0 0 4px; } .sub { color: #57606a; margin-bottom: 16px; }
  .grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(min(320px, 100%), 1fr)); gap: 14px; }
  .wide { grid-column: 1 / -1; } @media (max-width: 480px) { body { margin: 12px; } }
  .stale .card b, .stale .num, .stale #upload-done, .stale #upload-total, .stale #pushed td { color: #8c959f; }
  .stale .bar > div { background: #8c959f; }
  button { font: inherit; padding: 2px 10px; margin-left: 6px; }
  .card { background: #fff; border: 1px solid #d0d7de; border-radius: 8px; padding: 12px 14px; }
  .card h2 { font-size: 15px; margin: 0 0 8px; } .num { font: 600 22px ui-monospace, monospace; }
  .bar { height: 14px; background: #eaeef2; border-radius: 7px; overflow: hidden; margin: 6px 0; }
  .bar > div { height: 100%; width: 0; background: #2da44e; }
  .muted { color: #57606a; } table { border-collapse: collapse; width: 100%; }
  td { padding: 2px 6px; border-bottom: 1px solid #eaeef2; font-family: ui-monospace, monospace; font-size: 12px; }
  #echo-grid { display: flex; flex-wrap: wrap; gap: 2px; margin-top: 6px; }
  #echo-grid span { width: 7px; height: 7px; background: #d0d7de; border-radius: 1px; }
  #echo-grid span.ok { background: #2da44e; } #echo-grid span.bad { background: #cf222e; }
</style></head>
<body>
<h1>muxwire in the browser</h1>
<div class="sub">Every box below is one or more channels of <b>one</b> WebSocket (<span id="url"></span>).</div>
<div class="grid">
  <div class="card"><h2>Session</h2>
    <div role="status">state <b id="state">connecting</b><button id="reconnect" hidden>Reconnect</button>
      · channels open <b id="channels">0</b></div>
    <div>round-trip time <span class="num" id="rtt">–</span> ms</div></div>
  <div class="card"><h2>Upload (one channel)</h2>
    <div class="bar"><div id="upload-bar"></div></div>
    <div><span id="upload-done">0</span> of <span id="upload-total">0</span> MiB ·
      <span class="num" id="upload-rate">–</span> MiB/s · <span id="upload-state" class="muted">starting</span></div></div>
  <div class="card"><h2>Ticker (its own channel, 10 messages a second)</h2>
    <div>latency now <span class="num" id="tick-now">–</span> ms · worst during the upload
      <b id="tick-max-upload">–</b> ms · ticks <b id="ticks">0</b></div></div>
  <div class="card"><h2>Echo channels</h2>
    <div><b id="echo-ok">0</b> of <b id="echo-count">0</b> channels echoed exactly<span id="echo-time"
      class="muted"></span></div><div id="echo-grid"></div></div>
  <div class="card wide"><h2>Channels the server pushed</h2>
    <table id="pushed"><tr><td class="muted">waiting…</td></tr></table></div>
</div>
<script src="/demo.js"></script>
</body></html>`;

/** Serves one page-dialled channel, by its first byte. */
function serveChannel(channel: Channel): void {
  channel.on('error', () => {}); // the page may go away at any time
  channel.once('data', (first: Buffer) => {
    const service = first[0];
    const rest = first.subarray(1);
    if (service === 0x45 /* E */) {
      if (rest.length > 0) channel.write(rest);
      channel.pipe(channel);
    } else if (service === 0x55 /* U */) {
      let total = rest.length;
      channel.on('data', (chunk: Buffer) => {
        total += chunk.length;
      });
      channel.on('end', () => channel.end(String(total)));
    } else {
      channel.write(first);
      channel.pipe(channel);
    }
  });
}

/** The channels the server opens towards the page as soon as it connects. */
function pushChannels(session: Session): void {
  const greeting = session.dial();
  greeting.on('error', () => {});
  greeting.end('hello from the server: this channel was opened by the server');
  const clock = session.dial();
  const view = session.dial();
  for (const channel of [clock, view]) channel.on('error', () => {});
  // The server's own ping, as the page's: the keep-alive's last RTT would be one measured up to 30 s ago.
  let rtt: number | undefined;
  const timer = setInterval(() => {
    session.ping().then(
      (measured) => (rtt = measured),
      () => {},
    );
    if (!clock.destroyed) clock.write(`server clock ${new Date().toISOString().slice(11, 19)} UTC`);
    if (!view.destroyed) {
      view.write(`server view: ${session.channelCount} channels open, its ping's RTT ${rtt?.toFixed(2) ?? '–'} ms`);
    }
  }, 500);
  session.once('close', () => clearInterval(timer));
}

/** A running demo server. */
export interface Demo {
  url: string;
  close(): Promise<void>;
}

/** Starts the demo on `port` (0: any free port) of `host`. */
export async function startDemo(port = 8080, host = '127.0.0.1'): Promise<Demo> {
  const [page, web] = await Promise.all([
    build({
      entryPoints: [path.join(here, 'page.js')],
      bundle: true,
      minify: true,
      format: 'iife',
      write: false,
      platform: 'browser',
      target: 'es2022',
      logLevel: 'silent',
    }),
    build({
      entryPoints: [path.resolve(here, '../../src/web/index.js')],
      bundle: true,
      minify: true,
      format: 'esm',
      write: false,
      platform: 'browser',
      target: 'es2022',
      logLevel: 'silent',
    }),
  ]);
  const pageScript = page.outputFiles[0]!.contents;
  const webModule = web.outputFiles[0]!.contents;
  const sessions = new Set<Session>();
  const server = http.createServer((request, response) => {
    const url = request.url ?? '/';
    if (url === '/demo.js') response.writeHead(200, { 'content-type': 'text/javascript' }).end(pageScript);
    else if (url === '/muxwire-web.js') response.writeHead(200, { 'content-type': 'text/javascript' }).end(webModule);
    else if (url === '/' || url.startsWith('/?')) response.writeHead(200, { 'content-type': 'text/html' }).end(PAGE);
    else response.writeHead(404).end();
  });
  const wss = createWebSocketServer({ server, path: '/mux' }, (session) => {
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
    session.on('channel', serveChannel);
    pushChannels(session);
  });
  await new Promise<void>((resolve, reject) => {
    // (The WebSocket server passes the HTTP server's errors on, as ws does: a port in use reaches both.)
    wss.once('error', reject);
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  const address = server.address() as AddressInfo;
  return {
    url: `http://${host}:${address.port}/`,
    async close() {
      for (const session of sessions) session.destroy();
      for (const client of wss.clients) client.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const port = Number(process.env.PORT ?? 8080);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`muxwire demo: PORT must be a port number (0 for any free one), got ${process.env.PORT}`);
    process.exit(1);
  }
  try {
    const demo = await startDemo(port);
    console.log(`muxwire demo: open ${demo.url} (Ctrl-C to stop)`);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    console.error(
      code === 'EADDRINUSE'
        ? `muxwire demo: port ${port} is in use; run it with PORT set to another (PORT=0 picks a free one)`
        : `muxwire demo: ${(error as Error).message}`,
    );
    process.exit(1);
  }
}
