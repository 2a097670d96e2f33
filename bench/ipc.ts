// Messages between the runner and its child processes (Node IPC, JSON serialisation).
import type { WorkloadId, WorkloadParams } from './workloads.js';

export interface ServerConfig {
  impl: string;
  maxChannels: number;
  /** setNoDelay(true) on every accepted socket (all workloads but bulk-cold, which keeps Node's defaults) */
  noDelay: boolean;
}

export interface ClientConfig {
  impl: string;
  workload: WorkloadId;
  params: WorkloadParams;
  maxChannels: number;
  port: number;
}

export interface ProxyConfig {
  targetPort: number;
  delayMs: number;
  /** bytes held per direction before reading pauses */
  maxBufferedBytes: number;
}

/** CPU time (user + system) of one process, in microseconds, as `process.cpuUsage()` counts it. */
export interface CpuSample {
  userUs: number;
  systemUs: number;
}

export interface ClientResult {
  figures: Record<string, number>;
  /**
   * The client's CPU time over the measured part of the workload (between its two `mark` messages), and the
   * work done in that part in the workload's cost unit (MB moved, channels opened, round trips), from which
   * the runner, adding the server's CPU over the same marks, makes the CPU-cost figures. `harness` is what the
   * bench itself spent in that part making fresh blocks to write (counted in `client` too).
   */
  cost?: { client: CpuSample; units: number; harness?: CpuSample };
  notes: string[];
  /** for the runner's cross-checks against the server's counters */
  expect?: { echoChannels?: number; sinkChannels?: number };
}

export interface MemorySample {
  heapUsed: number;
  rss: number;
  external: number;
}

export interface ServerStats {
  connections: number;
  channels: number;
  echoChannels: number;
  sinkChannels: number;
  channelErrors: number;
  lastChannelError?: string;
  sinkStampErrors: number;
  memory?: { base: MemorySample; now: MemorySample };
  /** the server's CPU time between the runner's two `cpu-mark` messages (the client's measured part) */
  cpu?: CpuSample;
}

export type ChildMessage =
  | { type: 'listening'; port: number }
  | { type: 'progress'; text: string }
  | { type: 'result'; result: ClientResult }
  | { type: 'stats'; stats: ServerStats }
  | { type: 'error'; message: string }
  /** client -> runner: the measured part starts or ends now (the runner passes it on to the server) */
  | { type: 'mark'; phase: 'start' | 'end' };

export type RunnerMessage = { type: 'stats'; measure: boolean } | { type: 'cpu-mark'; phase: 'start' | 'end' };

/** CPU time used by this process since `since` (or since it started). */
export function cpuSince(since?: CpuSample): CpuSample {
  const u = process.cpuUsage();
  return { userUs: u.user - (since?.userUs ?? 0), systemUs: u.system - (since?.systemUs ?? 0) };
}

export function send(msg: ChildMessage): void {
  if (process.send) process.send(msg);
}

export function errorText(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: string }).code;
    return code && !err.message.includes(code) ? `${err.message} (${code})` : err.message;
  }
  return String(err);
}

/** Exit on any uncaught failure after telling the runner why. */
export function reportCrashes(role: string): void {
  const die = (err: unknown): void => {
    send({ type: 'error', message: `${role}: ${errorText(err)}` });
    setTimeout(() => process.exit(1), 50).unref();
  };
  process.on('uncaughtException', die);
  process.on('unhandledRejection', die);
  process.on('disconnect', () => process.exit(0));
}

export async function measureMemory(): Promise<MemorySample> {
  const gc = (globalThis as { gc?: () => void }).gc;
  for (let i = 0; i < 3; i++) {
    gc?.();
    await new Promise((r) => setTimeout(r, 20));
  }
  const m = process.memoryUsage();
  return { heapUsed: m.heapUsed, rss: m.rss, external: m.external };
}
