import { lstat, readlink } from 'node:fs/promises';
import { decodePath, encodePath } from '../../lib/path-codec.js';

/**
 * Follows symlinks of an image path the way the kernel would inside a chroot at `root`: absolute
 * link targets restart at the root and ".." never climbs above it, so nothing outside the root is
 * ever looked at. Gives the final image path (aim string form), or undefined when a component is
 * missing or there are more than `maxLinks` links (a loop).
 */
export async function resolveInRoot(root: string, path: string, maxLinks = 40): Promise<string | undefined> {
  const rootBytes = Buffer.from(root.replace(/\/+$/, ''));
  let todo = path.split('/').filter((c) => c !== '');
  let done: string[] = [];
  let links = 0;
  while (todo.length > 0) {
    const c = todo.shift()!;
    if (c === '.') continue;
    if (c === '..') {
      done.pop();
      continue;
    }
    const candidate = [...done, c];
    const host = Buffer.concat([rootBytes, decodePath('/' + candidate.join('/'))]);
    let isLink: boolean;
    try {
      isLink = (await lstat(host)).isSymbolicLink();
    } catch {
      return undefined;
    }
    if (!isLink) {
      done = candidate;
      continue;
    }
    if (++links > maxLinks) return undefined;
    const target = encodePath((await readlink(host, { encoding: 'buffer' })) as Buffer);
    if (target.startsWith('/')) done = [];
    todo = [...target.split('/').filter((t) => t !== ''), ...todo];
  }
  return '/' + done.join('/');
}
