/**
 * Integrity: through the fault proxy, with writes split at random boundaries and latency each way, many
 * channels carrying random payloads deliver every byte exactly and in order, in both directions; for every
 * codec, and over TLS.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { CODECS } from '../support/codecs.js';
import { makePlan, runExchange } from '../support/exchange.js';
import { proxiedPair } from '../support/pairs.js';
import { Rng } from '../support/random.js';
import { selfSignedCertificate } from '../support/self-signed.js';
import { report, scaled } from '../support/soak.js';
import { exitWhenDone } from '../support/watchdog.js';

exitWhenDone();

const CHANNELS = scaled('MUXWIRE_INTEGRITY_CHANNELS', 200, 1000);
const TLS_CHANNELS = scaled('MUXWIRE_TLS_CHANNELS', 60, 1000);
const MAX_PAYLOAD = scaled('MUXWIRE_INTEGRITY_MAX_BYTES', 128 * 1024, 256 * 1024);
const MAX_LATENCY = scaled('MUXWIRE_INTEGRITY_MAX_LATENCY_MS', 40, 200);
const TIMEOUT = scaled('MUXWIRE_INTEGRITY_TIMEOUT_MS', 60_000, 600_000);

const faults = (seed: number) => ({
  seed,
  both: { latencyMs: [10, MAX_LATENCY] as const, split: { maxPiece: 4096, maxDelayMs: 2 } },
});

for (const codec of CODECS) {
  describe(`integrity over ${codec.name}`, () => {
    test(
      `${CHANNELS} channels, random payloads both ways, through random splits and 10-${MAX_LATENCY} ms latency`,
      { timeout: TIMEOUT + 10_000 },
      async (t) => {
        const seed = 0x5eed + codec.name.length;
        const rng = new Rng(seed);
        const pair = await proxiedPair({ proxy: faults(seed), client: codec.options, server: codec.options });
        try {
          const plan = makePlan(rng, CHANNELS, MAX_PAYLOAD);
          const result = await runExchange(pair.client, pair.server, plan, rng, { timeoutMs: TIMEOUT });
          assert.equal(pair.client.closeError, undefined);
          assert.equal(pair.server.closeError, undefined);
          assert.equal(pair.client.bufferedBytes, 0, 'client: nothing left unread');
          assert.equal(pair.server.bufferedBytes, 0, 'server: nothing left unread');
          t.diagnostic(
            report(`integrity ${codec.name}`, {
              seed,
              ...result,
              MBps: (result.bytesUp + result.bytesDown) / 1e6 / (result.elapsedMs / 1000),
            }),
          );
        } finally {
          await pair.close();
        }
      },
    );
  });
}

describe('integrity over TLS (node:tls, self-signed certificate made by the test)', () => {
  test(`${TLS_CHANNELS} channels over TLS through the proxy`, { timeout: TIMEOUT + 10_000 }, async (t) => {
    const material = selfSignedCertificate();
    const seed = 0x715;
    const rng = new Rng(seed);
    const pair = await proxiedPair({ proxy: faults(seed), tls: material });
    try {
      assert.equal((pair.clientSocket as import('node:tls').TLSSocket).authorized, true, 'the certificate verified');
      const plan = makePlan(rng, TLS_CHANNELS, MAX_PAYLOAD);
      const result = await runExchange(pair.client, pair.server, plan, rng, { timeoutMs: TIMEOUT });
      assert.equal(pair.client.closeError, undefined);
      t.diagnostic(report('integrity tls', { seed, ...result }));
    } finally {
      await pair.close();
    }
  });
});
