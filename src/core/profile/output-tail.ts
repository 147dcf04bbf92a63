/** Keeps the last bytes of a process's output, for error messages and results. */
export class OutputTail {
  private chunks: Buffer[] = [];
  private size = 0;

  constructor(private readonly limit = 64 * 1024) {}

  push(chunk: Buffer | string): void {
    const b = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    this.chunks.push(b);
    this.size += b.length;
    while (this.size - this.chunks[0]!.length >= this.limit) this.size -= this.chunks.shift()!.length;
  }

  /** The last `lines` lines as text (invalid UTF-8 replaced). */
  text(lines = 20): string {
    const all = Buffer.concat(this.chunks).toString('utf8').replace(/\n+$/, '');
    return all === '' ? '' : all.split('\n').slice(-lines).join('\n');
  }
}
