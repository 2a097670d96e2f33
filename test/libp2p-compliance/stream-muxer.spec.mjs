/**
 * libp2p's own compliance suite for stream muxers (`@libp2p/interface-compliance-tests`, its `stream-muxer`
 * export: base, close, stream and stress tests), run unchanged against `muxwire/libp2p` as built in
 * ../../dist. Run by mocha from this folder (see run.test.ts, which `npm test` runs).
 */
import './with-resolvers.mjs';

const { default: tests } = await import('@libp2p/interface-compliance-tests/stream-muxer');
const { muxwire } = await import('../../dist/src/libp2p/index.js');

describe('muxwire/libp2p', () => {
  tests({
    async setup() {
      return muxwire()();
    },
    async teardown() {},
  });
});
