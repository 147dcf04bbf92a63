import { readSync } from 'node:fs';

/** Reads `want` bytes into the start of `buf` from `position` of `fd`; fewer only at the end of the file. */
export function readFullSync(fd: number, buf: Buffer, want: number, position: number): number {
  let got = 0;
  while (got < want) {
    const n = readSync(fd, buf, got, want - got, position + got);
    if (n === 0) break;
    got += n;
  }
  return got;
}
