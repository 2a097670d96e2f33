/**
 * Launching Debian's Chromium for the browser tests and the demo's screenshot, through playwright-core
 * pointed at the system binary (nothing is downloaded).
 * @module
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type BrowserContext, chromium } from 'playwright-core';

/** The browser binary (MUXWIRE_CHROMIUM overrides Debian's path). */
export const CHROMIUM = process.env.MUXWIRE_CHROMIUM ?? '/usr/bin/chromium';

/**
 * Headless and sandbox-free (containers), and none of Chromium's own network traffic (background networking,
 * component updates, sync, QUIC): without these it floods a machine whose only network is loopback.
 */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  // WebRTC between two connections in one page: candidates on loopback, by address (no mDNS names)
  '--allow-loopback-in-peer-connection',
  '--disable-features=WebRtcHideLocalIpsWithMdns',
];

/** True when the browser binary is installed. */
export function chromiumAvailable(): boolean {
  return existsSync(CHROMIUM);
}

/** Launches Chromium with a fresh profile directory; `close()` ends it and removes the profile. */
export async function launchChromium(): Promise<{ context: BrowserContext; close: () => Promise<void> }> {
  const profile = mkdtempSync(path.join(os.tmpdir(), 'muxwire-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: 60_000,
  });
  return {
    context,
    close: async () => {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
