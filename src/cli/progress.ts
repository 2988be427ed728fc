/**
 * A line of progress on stderr, for a person watching: only when stderr is a terminal,
 * redrawn at most every 100 ms, first drawn once `afterMs` have passed (a short job shows
 * nothing), cut to the terminal's width, and cleared when done.
 */
import { formatSize } from '../units.js';
import { progressEnabled } from './common.js';

export interface ProgressLine {
  /** The line now, unless one was drawn less than 100 ms ago (`force`: drawn anyway). */
  update(text: () => string, force?: boolean): void;
  /** Clears the line, if one was drawn. */
  done(): void;
}

export function progressLine(afterMs = 0): ProgressLine | undefined {
  if (!progressEnabled()) return undefined;
  const started = Date.now();
  let last = 0;
  let shown = false;
  return {
    update: (text, force = false) => {
      const now = Date.now();
      if (now - started < afterMs || (!force && now - last < 100)) return;
      last = now;
      shown = true;
      const width = Math.max(20, (process.stderr.columns || 80) - 1);
      process.stderr.write(`\r\x1b[K${text().slice(0, width)}`);
    },
    done: () => {
      if (shown) process.stderr.write('\r\x1b[K');
    },
  };
}

/** `[#####-----]  45% 12.0 MiB of 26.6 MiB` */
export function bar(done: number, total: number, width = 20): string {
  const share = total > 0 ? Math.min(1, done / total) : 1;
  const filled = Math.round(share * width);
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${String(Math.floor(share * 100)).padStart(3)}% ${formatSize(done)} of ${formatSize(total)}`;
}
