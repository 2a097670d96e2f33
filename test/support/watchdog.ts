/**
 * A test file's last line of defence against hanging `npm test`: once every test of the file has run, the
 * process gets `graceMs` to exit by itself. If something still holds it open (a leaked socket, server or
 * timer), the watchdog lists what, marks the file failed and exits, so a leak is a failure and never a hang.
 */
import { after } from 'node:test';

export function exitWhenDone(graceMs = 10_000): void {
  after(() => {
    const timer = setTimeout(() => {
      const left = process.getActiveResourcesInfo().filter((kind) => kind !== 'TTYWrap');
      process.stderr.write(
        `muxwire watchdog: the process did not exit ${graceMs} ms after its tests; still open: ${left.join(', ')}\n`,
      );
      process.exit(1);
    }, graceMs);
    timer.unref(); // it never keeps the process alive itself
  });
}
