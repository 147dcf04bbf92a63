import { redact } from '../lib/redact.js';
import type { AimEvent, Reporter } from '../lib/reporter.js';
import { formatBytes } from './format.js';

/** 75 s → "1m15s", 3700 s → "1h01m". */
export function formatDuration(seconds: number): string {
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/**
 * Draws core events on stderr: a rewritten status line on a terminal, plain lines otherwise.
 * Silent with --json (stdout then carries only the result).
 */
export class StderrReporter implements Reporter {
  private readonly tty = process.stderr.isTTY === true;
  private statusShown = false;
  private lastPlain = 0;
  private lastDrawn = 0;
  private readonly starts = new Map<string, { at: number; done: number }>();

  constructor(private readonly quiet: boolean) {}

  emit(event: AimEvent): void {
    if (this.quiet) return;
    switch (event.type) {
      case 'stage':
        this.line(event.status === 'start' ? `» ${event.stage}${event.detail ? `: ${event.detail}` : ''}` : `✓ ${event.stage}${event.detail ? `: ${event.detail}` : ''}`);
        break;
      case 'progress': {
        const amount = event.unit === 'bytes' ? formatBytes(event.done) : `${event.done} ${event.unit}`;
        const total = event.total !== undefined ? (event.unit === 'bytes' ? ` / ${formatBytes(event.total)}` : ` / ${event.total}`) : '';
        const text = `  ${event.stage}: ${this.bar(event)}${amount}${total}${this.pace(event)}`;
        const last = event.total !== undefined && event.done >= event.total;
        if (this.tty) {
          // at most 10 redraws a second (a block upload reports 2,048 times in a minute), and the last
          if (!last && Date.now() - this.lastDrawn < 100) break;
          this.lastDrawn = Date.now();
          process.stderr.write(`\r\x1b[2K${redact(text)}`);
          this.statusShown = true;
        } else if (Date.now() - this.lastPlain > 2000 || last) {
          this.lastPlain = Date.now();
          this.line(text);
        }
        break;
      }
      case 'warn':
        this.line(`warning: ${event.message}`);
        break;
      case 'info':
        this.line(`  ${event.message}`);
        break;
    }
  }

  /** A bar of 20 cells and the percentage, on a terminal, when the total is known. */
  private bar(event: Extract<AimEvent, { type: 'progress' }>): string {
    if (!this.tty || !event.total) return '';
    const share = Math.min(1, Math.max(0, event.done / event.total));
    const cells = Math.round(share * 20);
    return `[${'#'.repeat(cells)}${'-'.repeat(20 - cells)}] ${Math.floor(share * 100)}% `;
  }

  /** Rate since the stage's first progress event, and the time left at that rate. */
  private pace(event: Extract<AimEvent, { type: 'progress' }>): string {
    const now = Date.now();
    let start = this.starts.get(event.stage);
    if (!start || event.done < start.done) {
      start = { at: now, done: event.done };
      this.starts.set(event.stage, start);
    }
    const seconds = (now - start.at) / 1000;
    if (seconds < 1 || event.done <= start.done) return '';
    const rate = (event.done - start.done) / seconds;
    const shown = event.unit === 'bytes' ? `${formatBytes(rate)}/s` : `${rate.toFixed(rate >= 10 ? 0 : 1)} ${event.unit}/s`;
    const left = event.total !== undefined && event.total > event.done ? (event.total - event.done) / rate : undefined;
    return `, ${shown}${left !== undefined ? `, ETA ${formatDuration(left)}` : ''}`;
  }

  private line(text: string): void {
    if (this.statusShown) {
      process.stderr.write('\r\x1b[2K');
      this.statusShown = false;
    }
    process.stderr.write(`${redact(text)}\n`);
  }
}
