/**
 * The wire codecs the reliability tests run over. Tests loop over `CODECS`, so a codec is covered everywhere
 * by adding it here. MUXWIRE_CODECS (comma-separated names) overrides the list for a run.
 */
import type { SessionOptions } from '../../src/index.js';

export interface CodecUnderTest {
  name: string;
  /** Session options that select it. */
  options: SessionOptions;
  /** The format has half-close (FIN closes one direction only). */
  halfClose: boolean;
}

const KNOWN: Record<string, CodecUnderTest> = {
  yamux: { name: 'yamux', options: {}, halfClose: true },
  multiplex: { name: 'multiplex', options: { protocol: 'multiplex' }, halfClose: false },
};

const DEFAULT_CODECS = 'yamux,multiplex';

export const CODECS: CodecUnderTest[] = (process.env.MUXWIRE_CODECS ?? DEFAULT_CODECS)
  .split(',')
  .map((name) => name.trim())
  .filter((name) => name !== '')
  .map((name) => {
    const codec = KNOWN[name];
    if (codec === undefined)
      throw new Error(`MUXWIRE_CODECS: unknown codec ${name} (known: ${Object.keys(KNOWN).join(', ')})`);
    return codec;
  });
