import { redact } from '../lib/redact.js';
import type { AimEvent, Reporter } from '../lib/reporter.js';
import { formatBytes } from './format.js';

/**
 * Draws core events on stderr: a rewritten status line on a terminal, plain lines otherwise.
 * Silent with --json (stdout then carries only the result).
 */
export class StderrReporter implements Reporter {
  private readonly tty = process.stderr.isTTY === true;
  private statusShown = false;
  private lastPlain = 0;

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
        const text = `  ${event.stage}: ${amount}${total}`;
        if (this.tty) {
          process.stderr.write(`\r\x1b[2K${redact(text)}`);
          this.statusShown = true;
        } else if (Date.now() - this.lastPlain > 2000 || event.total !== undefined) {
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

  private line(text: string): void {
    if (this.statusShown) {
      process.stderr.write('\r\x1b[2K');
      this.statusShown = false;
    }
    process.stderr.write(`${redact(text)}\n`);
  }
}
