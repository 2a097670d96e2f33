// The implementations the harness knows, in table order. Modules are loaded lazily, in the child
// processes, so that one implementation's load-time side effects (polyfills, module state) never
// touch another's run.
import type { Implementation } from './types.js';
import type { WorkloadId } from '../workloads.js';

export interface ImplEntry {
  name: string;
  /** as Implementation.transport, known without loading the module */
  transport: 'shared' | 'per-channel';
  load(): Promise<Implementation>;
  /**
   * A yardstick written for the bench rather than a multiplexer people use: shown beside the others, left out
   * of "the best other multiplexer".
   */
  reference?: boolean;
  /** Run only when named in `--impls` (an experiment, not part of the default set). */
  explicit?: boolean;
  /** The only workloads it runs (all when absent). */
  workloads?: readonly WorkloadId[];
  /** Resolves to a reason when the implementation cannot run here (checked by the runner). */
  unavailable?(): Promise<string | null>;
}

async function muxwireUnavailable(): Promise<string | null> {
  const { loadMuxwire } = await import('./muxwire.js');
  try {
    await loadMuxwire();
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}

const def = async (p: Promise<{ default: Implementation }>) => (await p).default;

export const IMPLEMENTATIONS: readonly ImplEntry[] = [
  { name: 'raw-tcp', transport: 'per-channel', load: () => def(import('./raw-tcp.js')) },
  {
    name: 'muxwire',
    transport: 'shared',
    load: () => def(import('./muxwire.js')),
    unavailable: () => muxwireUnavailable(),
  },
  {
    name: 'muxwire-light',
    transport: 'shared',
    load: () => def(import('./muxwire-light.js')),
    unavailable: () => muxwireUnavailable(),
  },
  { name: 'http2', transport: 'shared', load: () => def(import('./http2.js')) },
  { name: 'libp2p-yamux', transport: 'shared', load: () => def(import('./libp2p-yamux.js')) },
  // muxwire's libp2p muxer, measured against libp2p-yamux on the libp2p-level workloads (docs/libp2p.md).
  {
    name: 'muxwire-libp2p',
    transport: 'shared',
    workloads: ['bulk-1', 'open-10k', 'rr-1'],
    load: () => def(import('./muxwire-libp2p.js')),
    unavailable: () => muxwireUnavailable(),
  },
  { name: 'yamux-js', transport: 'shared', load: () => def(import('./yamux-js.js')) },
  { name: 'multiplex', transport: 'shared', load: () => def(import('./multiplex.js')) },
  { name: 'mplex', transport: 'shared', load: () => def(import('./mplex.js')) },
  // What one connection with Node Duplex channels allows at best, on the workloads whose targets muxwire misses.
  {
    name: 'floor',
    transport: 'shared',
    reference: true,
    workloads: ['bulk-1', 'bulk-cold', 'bulk-100', 'open-10k'],
    load: () => def(import('./floor.js')),
  },
  // Issue 16's experiment on the floor's channels: the same framing, the Duplex made as cheaply as Node lets a
  // subclass make it (see floor.ts, FLOOR_VARIANTS). Run by name only (`--impls floor-lean,...`): yardsticks.
  {
    name: 'floor-lean',
    transport: 'shared',
    reference: true,
    explicit: true,
    workloads: ['open-10k'],
    load: async () => (await import('./floor.js')).floorVariant('floor-lean'),
  },
  {
    name: 'floor-hwm',
    transport: 'shared',
    reference: true,
    explicit: true,
    workloads: ['open-10k'],
    load: async () => (await import('./floor.js')).floorVariant('floor-hwm'),
  },
];

export function findImpl(name: string): ImplEntry {
  const entry = IMPLEMENTATIONS.find((e) => e.name === name);
  if (!entry)
    throw new Error(`unknown implementation '${name}' (known: ${IMPLEMENTATIONS.map((e) => e.name).join(', ')})`);
  return entry;
}

/** Names of the yardsticks ({@link ImplEntry.reference}). */
export const REFERENCES: ReadonlySet<string> = new Set(IMPLEMENTATIONS.filter((e) => e.reference).map((e) => e.name));
