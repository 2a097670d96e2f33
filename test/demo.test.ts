/**
 * The demo (`npm run demo`) in Chromium: the page connects, uploads with progress while the ticker runs,
 * echoes hundreds of channels exactly and shows the channels the server pushed; then a screenshot is taken
 * (to dist/demo.png; `npm run demo:screenshot` writes docs/demo.png, the one the README shows).
 * Skips without Chromium, except on CI.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDemo } from '../examples/demo/server.js';
import { CHROMIUM, chromiumAvailable, launchChromium } from './support/chromium.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const screenshot =
  process.env.MUXWIRE_SCREENSHOT === 'docs' ? path.join(root, 'docs/demo.png') : path.join(root, 'dist/demo.png');

interface DemoStatus {
  uploadDone: boolean;
  echoDone: boolean;
  pushed: number;
  ticks: number;
  maxTickDuringUpload: number;
}

if (!chromiumAvailable()) {
  if (process.env.CI === 'true') {
    test('Chromium for the demo test', () => assert.fail(`${CHROMIUM} is missing; .ci/run installs Debian's chromium`));
  } else {
    test('the demo in Chromium', { skip: `${CHROMIUM} is missing (apt-get install chromium)` }, () => {});
  }
} else {
  test(
    'the demo page uploads 32 MiB with a live ticker, echoes 300 channels exactly and shows 3 pushed channels',
    { timeout: 120_000 },
    async () => {
      const demo = await startDemo(0);
      const browser = await launchChromium();
      try {
        const page = await browser.context.newPage();
        await page.setViewportSize({ width: 1000, height: 720 });
        await page.goto(`${demo.url}?mib=32&echo=300`);
        await page.waitForFunction(
          () => {
            const status = (window as unknown as { demo: DemoStatus }).demo;
            return status.uploadDone && status.echoDone && status.pushed >= 3 && status.ticks >= 10;
          },
          undefined,
          { timeout: 90_000, polling: 100 },
        );
        // Let the RTT and the pushed channels' next messages show.
        await page.waitForTimeout(1200);
        const status = await page.evaluate(() => (window as unknown as { demo: DemoStatus }).demo);
        assert.ok(
          status.maxTickDuringUpload < 1000,
          `ticker latency during the upload: ${status.maxTickDuringUpload} ms`,
        );
        assert.match((await page.textContent('#upload-state')) ?? '', /server received every byte/);
        assert.equal(await page.textContent('#echo-ok'), '300');
        assert.match((await page.textContent('#rtt')) ?? '', /^\d+\.\d\d$/);
        assert.match((await page.textContent('#pushed')) ?? '', /server clock/);
        // The demo server also serves the README's page script: its module, and an echo for other channels.
        const echoed = await page.evaluate(async () => {
          // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-assertion -- keeps tsc from resolving the page's URL
          const web = (await import('/muxwire-web.js' as string)) as typeof import('../src/web/index.js');
          const session = await web.connectWebSocket(`ws://${location.host}/mux`);
          const channel = session.dial();
          const writer = channel.writable.getWriter();
          await writer.write(new TextEncoder().encode('hello'));
          await writer.close();
          let text = '';
          const reader = channel.readable.getReader();
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            text += new TextDecoder().decode(value);
          }
          await session.close();
          return text;
        });
        assert.equal(echoed, 'hello');
        await page.screenshot({ path: screenshot, fullPage: true });
        console.log(
          `  # screenshot: ${path.relative(root, screenshot)}; ticker worst during upload ${status.maxTickDuringUpload.toFixed(1)} ms`,
        );
      } finally {
        await browser.close();
        await demo.close();
      }
    },
  );

  test(
    "the demo page fits a phone's width, and when its server goes away it says so, stops its timers and offers to reconnect",
    { timeout: 60_000 },
    async () => {
      const demo = await startDemo(0);
      const browser = await launchChromium();
      let stopped = false;
      try {
        const page = await browser.context.newPage();
        const errors: string[] = [];
        page.on('pageerror', (error) => errors.push(error.message));
        await page.setViewportSize({ width: 390, height: 844 });
        await page.goto(`${demo.url}?mib=1024&echo=10`); // an upload still running when the server goes
        await page.waitForFunction(() => (window as unknown as { demo: DemoStatus }).demo.ticks >= 5, undefined, {
          timeout: 30_000,
        });
        const widths = await page.evaluate(() => ({
          inner: window.innerWidth,
          scroll: document.documentElement.scrollWidth,
        }));
        assert.equal(widths.inner, 390, 'laid out at the device width (a viewport meta tag)');
        assert.ok(widths.scroll <= widths.inner, `nothing runs off screen: ${widths.scroll} px wide`);
        await demo.close();
        stopped = true;
        await page.waitForFunction(() => document.getElementById('reconnect')?.hidden === false, undefined, {
          timeout: 10_000,
        });
        assert.match((await page.textContent('#state')) ?? '', /^disconnected: /);
        assert.match((await page.textContent('#upload-state')) ?? '', /stopped: the connection ended/);
        const ticks = await page.evaluate(() => (window as unknown as { demo: DemoStatus }).demo.ticks);
        await page.waitForTimeout(1000);
        assert.equal(await page.evaluate(() => (window as unknown as { demo: DemoStatus }).demo.ticks), ticks);
        // Reconnect with the server still down keeps the page (and says so) rather than load an error page.
        await page.click('#reconnect');
        await page.waitForFunction(() => document.getElementById('state')?.textContent?.includes('still unreachable'));
        assert.match(page.url(), /^http:/);
        assert.deepEqual(errors, [], 'no uncaught error in the page');
      } finally {
        await browser.close();
        if (!stopped) await demo.close();
      }
    },
  );
}
