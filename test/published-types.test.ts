/**
 * The published declarations as a strict project uses them: small programs that import `muxwire`,
 * `muxwire/web` and `muxwire/libp2p` (resolved by the package's own name to this build, as the README's
 * programs are in test/readme.test.ts) are type-checked with `exactOptionalPropertyTypes` on, the library
 * checks on too, once with Node's types and once for a page (the DOM's types, no Node). The Node program
 * that passes every option as `undefined` also runs, to show that the runtime takes it as "the default".
 * (test/package.test.ts checks the packed tarball; this checks the declarations' content.)
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, runProgram } from './support/run-program.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** Inside the package (under dist/), so that `import 'muxwire'` resolves to this build. */
const DIR = join(ROOT, 'dist', 'published-types');
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
const DEADLINE_MS = 60_000;

/** What a strict project turns on, beyond `strict`: optional properties exactly as declared. */
const STRICT = {
  strict: true,
  exactOptionalPropertyTypes: true,
  noUncheckedIndexedAccess: true,
  skipLibCheck: false,
  target: 'ES2022',
};

/**
 * Every option property given as `undefined`, as an application writes when it forwards optional settings of
 * its own (`{ keepAliveInterval: config.keepAlive }`); the runtime takes it as the default.
 */
const UNDEFINED_OPTIONS = `
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { pipeline } from 'node:stream';
import { text } from 'node:stream/consumers';
import { WebSocket as WsWebSocket } from 'ws';
import {
  ChannelResetError,
  DEFAULT_OPTIONS,
  MuxError,
  SessionClosedError,
  TimeoutError,
  connect,
  createServer,
  createWebSocketServer,
  multiplexedClient,
  webSocketTransport,
  type SessionOptions,
  type WebSocketTransportOptions,
} from 'muxwire';
import { WebSession, connectWebSocket, type WebSocketConstructor } from 'muxwire/web';
import { muxwire } from 'muxwire/libp2p';

const unset = {
  protocol: undefined,
  maxStreams: undefined,
  maxInboundStreams: undefined,
  maxOutboundStreams: undefined,
  acceptBacklog: undefined,
  ackBacklog: undefined,
  initialWindow: undefined,
  maxWindow: undefined,
  maxSessionBuffered: undefined,
  memoryBudget: undefined,
  maxFrameSize: undefined,
  keepAliveInterval: undefined,
  keepAliveTimeout: undefined,
  closeTimeout: undefined,
  openTimeout: undefined,
  channelHighWaterMark: undefined,
  peerResetBurst: undefined,
  peerResetRate: undefined,
  readTimeSlice: undefined,
  logger: undefined,
} satisfies Record<keyof SessionOptions, undefined>;
const sessionOptions: SessionOptions = unset;

// Each error class says its codes: a branch on one narrows, a code it cannot carry does not compile.
function codeOf(error: unknown): string {
  if (error instanceof TimeoutError) {
    const code: 'ERR_MUX_KEEPALIVE_TIMEOUT' | 'ERR_MUX_CLOSE_TIMEOUT' | 'ERR_MUX_OPEN_TIMEOUT' = error.code;
    // @ts-expect-error -- a TimeoutError never carries ERR_MUX_PROTOCOL
    if (error.code === 'ERR_MUX_PROTOCOL') return 'never';
    return code;
  }
  if (error instanceof ChannelResetError && error.code === 'ERR_MUX_CHANNEL_ABORTED') return 'aborted here';
  return error instanceof MuxError ? error.code : 'other';
}
assert.equal(codeOf(new TimeoutError('ERR_MUX_OPEN_TIMEOUT', 'late')), 'ERR_MUX_OPEN_TIMEOUT');
const transportOptions: WebSocketTransportOptions = {
  highWaterMark: undefined,
  lowWaterMark: undefined,
  pollInterval: undefined,
};

// TCP: createServer(), connect(), dial(), ping(), accept(), close().
const server = createServer(sessionOptions, (session) => session.on('channel', (c) => pipeline(c, c, () => {})));
server.listen(0, '127.0.0.1');
await once(server, 'listening');
const session = await connect({
  host: '127.0.0.1',
  port: (server.address() as AddressInfo).port,
  ...unset,
  signal: undefined,
});
for (const key of Object.keys(unset) as (keyof SessionOptions)[]) {
  if (key !== 'logger') assert.equal(session.options[key], DEFAULT_OPTIONS[key], key);
}
const channel = session.dial({ signal: undefined, openTimeout: undefined, allowHalfOpen: undefined });
channel.end('tcp');
const echoed = await text(channel);
assert.equal(typeof (await session.ping({ signal: undefined })), 'number');
const accepting = assert.rejects(session.accept({ signal: undefined }), SessionClosedError);
await session.close({ timeout: undefined, signal: undefined });
await accepting;
server.close();

// WebSocket: createWebSocketServer(), connectWebSocket(), webSocketTransport(), WebSession.
const WebSocket = WsWebSocket as unknown as WebSocketConstructor;
const sockets = createWebSocketServer(
  {
    port: 0,
    host: '127.0.0.1',
    server: undefined,
    path: undefined,
    maxMessageSize: undefined,
    ...transportOptions,
    ...unset,
  },
  (s) => s.on('channel', (c) => pipeline(c, c, () => {})),
);
await once(sockets, 'listening');
const url = \`ws://127.0.0.1:\${(sockets.address() as AddressInfo).port}/\`;
const page = await connectWebSocket(url, {
  WebSocket,
  protocols: undefined,
  signal: undefined,
  multiplexCodec: undefined,
  logRecords: undefined,
  ...transportOptions,
  ...unset,
});
const webChannel = page.dial({ openTimeout: undefined });
const chunks: string[] = [];
const reading = webChannel.readable.pipeThrough(new TextDecoderStream()).pipeTo(
  new WritableStream({ write: (chunk) => void chunks.push(chunk) }),
);
const writer = webChannel.writable.getWriter();
await writer.write(new TextEncoder().encode('web'));
await writer.close();
await reading;
const byHand = new WebSession(webSocketTransport(new WebSocket(url), transportOptions), 'client', {
  multiplexCodec: undefined,
  logRecords: undefined,
  ...unset,
});
const nodeClient = multiplexedClient(webSocketTransport(new WebSocket(url), transportOptions), sessionOptions);
await Promise.all([page.close({ timeout: undefined }), byHand.close(), nodeClient.close()]);
await new Promise<void>((resolve) => sockets.close(() => resolve()));

// libp2p: muxwire(init).
muxwire({
  enableKeepAlive: undefined,
  keepAliveInterval: undefined,
  session: undefined,
  streamOptions: { initialStreamWindowSize: undefined, maxStreamWindowSize: undefined },
});
muxwire({ session: sessionOptions });

console.log(echoed, chunks.join(''));
`;

/** Declarations that must say what the runtime has (compiled, not run). */
const NODE_TYPES = `
import type { Server as HttpServer } from 'node:http';
import type { Duplex } from 'node:stream';
import {
  createWebSocketServer,
  type Channel,
  type LightChannel,
  type LightSession,
  type Session,
  type WebSocketServerOptions,
  type MemoryBudget,
  type MuxErrorCode,
  isMuxError,
} from 'muxwire';

declare const channel: Channel;
declare const light: LightChannel;
declare const http: HttpServer;

// A Node channel's session is the Session (its socket), a light channel's the LightSession.
const session: Session = channel.session;
const socket: Duplex | undefined = channel.session.socket;
const lightSession: LightSession = light.session;

// The options a session resolved are all there, none undefined.
const interval: number = session.options.keepAliveInterval;
const budget: MemoryBudget | null = session.options.memoryBudget;

// createWebSocketServer takes exactly one of server and port, as it checks at run time.
const onServer: WebSocketServerOptions = { server: http, path: '/mux' };
const onPort: WebSocketServerOptions = { port: 0, host: '127.0.0.1' };
function shapes(): void {
  // @ts-expect-error neither server nor port
  createWebSocketServer({}, () => {});
  // @ts-expect-error both server and port
  createWebSocketServer({ server: http, port: 0 }, () => {});
  // @ts-expect-error path alone says nowhere to listen
  createWebSocketServer({ path: '/mux' }, () => {});
}

// isMuxError types an error (of this copy or another) by its code: each code narrows to its class's fields.
function describeFailure(error: unknown): string {
  if (!isMuxError(error)) return 'not muxwire';
  switch (error.code) {
    case 'ERR_MUX_GO_AWAY':
      return 'go away ' + error.goAwayCode.toFixed(0);
    case 'ERR_MUX_CHANNEL_REFUSED':
    case 'ERR_MUX_CHANNEL_RESET':
    case 'ERR_MUX_CHANNEL_ABORTED':
      return 'channel ' + error.channelId.toFixed(0);
    case 'ERR_MUX_PROTOCOL':
      return 'protocol ' + String(error.goAwayCode);
    // @ts-expect-error a misspelt code is no code of muxwire's
    case 'ERR_MUX_GOAWAY':
      return 'never';
    default: {
      const code: MuxErrorCode = error.code;
      return code;
    }
  }
}

export { session, socket, lightSession, interval, budget, onServer, onPort, shapes, describeFailure };
`;

/** A page's program, with the DOM's own stream and WebSocket types and no Node types (compiled, not run). */
const WEB_TYPES = `
import {
  WebChannel,
  WebSession,
  connectWebSocket,
  streamTransport,
  webSocketTransport,
  type ConnectWebSocketOptions,
  type WebSocketTransportOptions,
} from 'muxwire/web';

declare const channel: WebChannel;

// A standard Web Streams byte pair is a stream transport (the DOM's read() result says \`value: T | undefined\`).
const pair = new TransformStream<Uint8Array, Uint8Array>();
const overStreams = new WebSession(streamTransport({ readable: pair.readable, writable: pair.writable }), 'client');

// The readable's chunks are Uint8Arrays on an ArrayBuffer: the standard transforms and sinks take them.
const text: ReadableStream<string> = channel.readable.pipeThrough(new TextDecoderStream());
const response = new Response(channel.readable);
async function firstChunk(): Promise<void> {
  const { value } = await channel.readable.getReader().read();
  if (value === undefined) return;
  new Blob([value]);
  await crypto.subtle.digest('SHA-256', value);
  new TextDecoder().decode(value);
}
// ... and the writable takes what the standard streams give.
const piped = new Blob(['x']).stream().pipeTo(channel.writable);
const encoded = new TextEncoderStream().readable.pipeTo(channel.writable);

// A WebChannel's session is the WebSession.
const session: WebSession = channel.session;

// Options given as undefined take their defaults.
const transportOptions: WebSocketTransportOptions = {
  highWaterMark: undefined,
  lowWaterMark: undefined,
  pollInterval: undefined,
};
const options: ConnectWebSocketOptions = {
  protocols: undefined,
  signal: undefined,
  WebSocket: undefined,
  multiplexCodec: undefined,
  logRecords: undefined,
  keepAliveInterval: undefined,
  ...transportOptions,
};
const connecting = connectWebSocket('wss://example.invalid/mux', options);
const byHand = new WebSession(webSocketTransport(new WebSocket('wss://example.invalid/mux'), transportOptions), 'client', {
  multiplexCodec: undefined,
  logRecords: undefined,
  openTimeout: undefined,
});

// TypeScript 6 and 7's DOM types take in send() only views over an ArrayBuffer (their shape, written out here):
// such a WebSocket is one the transport and connectWebSocket take.
interface StrictSendWebSocket extends Omit<WebSocket, 'send'> {
  send(data: string | Blob | ArrayBuffer | ArrayBufferView<ArrayBuffer>): void;
}
declare const StrictSend: { new (url: string | URL, protocols?: string | string[]): StrictSendWebSocket };
const strictTransport = webSocketTransport(new StrictSend('wss://example.invalid/mux'));
const strictConnecting = connectWebSocket('wss://example.invalid/mux', { WebSocket: StrictSend });

export { text, response, firstChunk, piped, encoded, session, connecting, byHand, strictTransport, strictConnecting };
`;

function writeProject(name: string, files: Record<string, string>, compilerOptions: object): string {
  const dir = join(DIR, name);
  mkdirSync(dir, { recursive: true });
  for (const [file, code] of Object.entries(files)) writeFileSync(join(dir, file), code);
  writeFileSync(
    join(dir, 'tsconfig.json'),
    JSON.stringify({ compilerOptions: { ...STRICT, ...compilerOptions }, files: Object.keys(files) }),
  );
  return dir;
}

function typeCheck(dir: string): void {
  try {
    execFileSync(process.execPath, [TSC, '-p', dir], { encoding: 'utf8', timeout: DEADLINE_MS });
  } catch (error) {
    assert.fail(`tsc failed (${dir}):\n${(error as { stdout?: string }).stdout}`);
  }
}

let nodeDir = '';
let webDir = '';

before(() => {
  rmSync(DIR, { recursive: true, force: true });
  nodeDir = writeProject(
    'node',
    { 'undefined-options.ts': UNDEFINED_OPTIONS, 'types.ts': NODE_TYPES },
    {
      module: 'NodeNext',
      moduleResolution: 'NodeNext',
      types: ['node'], // and the default libraries, the DOM's among them, which @libp2p/interface's types need
      rootDir: '.',
      outDir: 'out',
    },
  );
  webDir = writeProject(
    'web',
    { 'page.ts': WEB_TYPES },
    { module: 'ESNext', moduleResolution: 'bundler', lib: ['ES2022', 'DOM', 'DOM.Iterable'], types: [], noEmit: true },
  );
});

test(
  'with Node types and exactOptionalPropertyTypes: options take undefined; channel sessions, createWebSocketServer typed as they are',
  { timeout: 2 * DEADLINE_MS },
  () => typeCheck(nodeDir),
);

test(
  "with the DOM's types and exactOptionalPropertyTypes: a WebChannel's readable goes into TextDecoderStream, Response, Blob; a WebSocket whose send() takes only ArrayBuffer views (TypeScript 6's DOM) is taken",
  { timeout: 2 * DEADLINE_MS },
  () => typeCheck(webDir),
);

test('every option given as undefined takes its default at run time', { timeout: 2 * DEADLINE_MS }, async () => {
  const program = join(nodeDir, 'out', 'undefined-options.js');
  // The type check above emits it (type errors and all); built here when that test was filtered out.
  if (!existsSync(program)) {
    try {
      execFileSync(process.execPath, [TSC, '-p', nodeDir], { encoding: 'utf8', timeout: DEADLINE_MS });
    } catch {
      // its type errors are the other test's to report
    }
  }
  const result = await runProgram([program], { timeoutMs: DEADLINE_MS });
  assert.equal(result.code, 0, describe(result));
  assert.equal(result.stderr, '', describe(result));
  assert.equal(result.stdout, 'tcp web\n', describe(result));
});
