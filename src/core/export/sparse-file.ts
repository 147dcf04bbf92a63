import { ftruncate, write } from 'node:fs';
import { promisify } from 'node:util';
import { InputError } from '../../lib/errors.js';
import { checkExtents, type DataExtent } from '../model/sparse.js';

const writeAt = promisify(write);
const truncateTo = promisify(ftruncate);

/**
 * Writes a regular file's content into an open, empty file: dense content as it comes, a file
 * with holes (`extents`, model/sparse.ts) as positional writes of its data only, then the file is
 * truncated to its apparent size, so the holes stay holes on any filesystem that has them.
 * `data` streams the stored bytes (only the extents' bytes for a sparse file). For writers that
 * create files themselves (openat-style walks) rather than through GNU tar.
 */
export async function writeFileContent(fd: number, size: number, extents: readonly DataExtent[] | undefined, data: AsyncIterable<Buffer>): Promise<void> {
  const problem = extents && checkExtents(extents, size);
  if (problem) throw new InputError('E_BAD_SPARSE_MAP', `invalid sparse map: ${problem}`);
  const regions = extents ?? (size > 0 ? [[0, size] as DataExtent] : []);
  let i = 0;
  let pos = regions[0]?.[0] ?? 0;
  let left = regions[0]?.[1] ?? 0;
  for await (const chunk of data) {
    for (let off = 0; off < chunk.length; ) {
      if (left === 0) {
        if (++i >= regions.length) throw new InputError('E_SIZE_MISMATCH', `the content has more bytes than the file's ${size}`);
        [pos, left] = regions[i]!;
      }
      const n = Math.min(left, chunk.length - off);
      const { bytesWritten } = await writeAt(fd, chunk, off, n, pos);
      off += bytesWritten;
      pos += bytesWritten;
      left -= bytesWritten;
    }
  }
  if (left > 0 || i < regions.length - 1) throw new InputError('E_SIZE_MISMATCH', `the content ends before the file's ${size} bytes`);
  await truncateTo(fd, size);
}
