import { ConfigError } from '../../lib/errors.js';
import { systemClock, type Clock } from './readiness.js';

/** Longest unfinished line kept per stream (a workload that never writes a newline). */
const MAX_PARTIAL = 64 * 1024;

/** A ready-log pattern from a flag, the environment or a template, checked before anything runs. */
export function parseReadyLog(text: string, source: string): RegExp {
  try {
    return new RegExp(text);
  } catch (e) {
    throw new ConfigError(`${source} ${JSON.stringify(text)}: not a regular expression (${(e as Error).message})`, {
      hint: 'give a JavaScript regular expression matched against each line, e.g. "ready to accept connections"',
    });
  }
}

/**
 * Watches a process's output streams for the first line matching a pattern (the workload's
 * "ready" line), and remembers when it came. Lines are split per stream, so interleaved stdout
 * and stderr do not glue halves together; a line still being written counts when checked.
 */
export class LineWatch {
  private readonly partial = new Map<string, string>();
  private found: { line: string; at: number } | undefined;

  constructor(
    private readonly pattern: RegExp,
    private readonly clock: Clock = systemClock,
  ) {}

  push(stream: string, chunk: Buffer | string): void {
    if (this.found) return;
    const lines = ((this.partial.get(stream) ?? '') + chunk.toString()).split('\n');
    const rest = lines.pop()!;
    for (const line of lines) if (this.test(line)) return;
    this.partial.set(stream, rest.length > MAX_PARTIAL ? rest.slice(-MAX_PARTIAL) : rest);
  }

  /** True once a line matched (an unfinished line is tried too). */
  check(): boolean {
    if (!this.found) for (const rest of this.partial.values()) if (rest !== '' && this.test(rest)) break;
    return this.found !== undefined;
  }

  get matched(): { line: string; at: number } | undefined {
    return this.found;
  }

  private test(line: string): boolean {
    const text = line.replace(/\r$/, '');
    if (!this.pattern.test(text)) return false;
    this.found = { line: text, at: this.clock.now() };
    return true;
  }
}
