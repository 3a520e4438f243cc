// A terminal view that redraws itself every interval (`lb4 top`, `lb4 backends --watch`) until
// Ctrl-C, SIGTERM or `q`. Each frame is drawn whole after clearing the screen, so a frame shorter
// than the last leaves nothing behind. The cursor is hidden while it runs and shown again however
// it ends, and a terminal put in raw mode (to read `q` without Enter) is put back.

import { Lb4Error } from '../../lib/errors.js';
import { parseDuration } from '../../lib/config/duration.js';

const clearScreen = '\x1b[H\x1b[2J';
const hideCursor = '\x1b[?25l';
const showCursor = '\x1b[?25h';

/** Below this, redrawing costs more than it shows, and the admin API answers four requests a draw. */
export const minIntervalMs = 100;

/** `--interval`: a duration such as `1s` or `500ms`, at least {@link minIntervalMs}. */
export function parseInterval(text: string): number {
  const ms = parseDuration(text, 'interval');
  if (ms < minIntervalMs) throw new Lb4Error('LB4_INVALID_DURATION', `must be at least ${minIntervalMs}ms, got "${text}"`, { field: 'interval' });
  return ms;
}

/**
 * Draws `frame()` now and then every `intervalMs` (measured from one draw's start to the next, so
 * a slow admin API does not stretch the clock) until stopped. A frame that fails (the balancer
 * stopped, say) is shown as its error and tried again at the next tick: a watch outlives restarts.
 */
export async function runLiveView(frame: () => Promise<string>, intervalMs: number): Promise<void> {
  const out = process.stdout;
  const input = process.stdin;
  let stop: () => void = () => {};
  const stopped = new Promise<void>((resolve) => (stop = resolve));
  const onKey = (key: Buffer) => {
    // `q`, Ctrl-C (raw mode delivers it as a byte, not a signal) or Ctrl-D.
    if (key.includes(0x71) || key.includes(0x03) || key.includes(0x04)) stop();
  };
  const rawInput = input.isTTY === true;
  if (rawInput) {
    input.setRawMode(true);
    input.on('data', onKey);
    input.resume();
  }
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  out.write(hideCursor);
  try {
    let running = true;
    void stopped.then(() => (running = false));
    while (running) {
      const started = Date.now();
      let text: string;
      try {
        text = await frame();
      } catch (err) {
        text = `lb4: ${(err as Error).message}\n(trying again every ${intervalMs} ms; q or Ctrl-C quits)`;
      }
      if (!running) break;
      out.write(`${clearScreen}${text}\n`);
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([stopped, new Promise<void>((resolve) => (timer = setTimeout(resolve, Math.max(0, intervalMs - (Date.now() - started)))))]);
      clearTimeout(timer);
    }
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    if (rawInput) {
      input.off('data', onKey);
      input.setRawMode(false);
      input.pause();
    }
    out.write(showCursor);
  }
}
