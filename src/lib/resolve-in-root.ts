import { lstat, readlink } from 'node:fs/promises';
import { decodePath, encodePath } from './path-codec.js';

/** What one component of an image path turned out to be, as a walk's caller decides. */
export type WalkStep = { kind: 'dir' } | { kind: 'link'; target: string } | { kind: 'stop' };

/**
 * Walks the components of an image path the way the kernel would inside a chroot: "." is skipped,
 * ".." never climbs above the root, a symlink's target (aim string form) is walked in its place
 * and an absolute one restarts at the root. `step` looks at each symlink-free candidate path
 * (components from the root) and says what it is. Gives the symlink-free components, or undefined
 * when a step stops the walk or there are more than `maxLinks` links (a loop).
 */
export async function walkInImage(path: string, step: (candidate: string[]) => Promise<WalkStep>, maxLinks = 40): Promise<string[] | undefined> {
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
    const what = await step(candidate);
    if (what.kind === 'stop') return undefined;
    if (what.kind === 'dir') {
      done = candidate;
      continue;
    }
    if (++links > maxLinks) return undefined;
    if (what.target.startsWith('/')) done = [];
    todo = [...what.target.split('/').filter((t) => t !== ''), ...todo];
  }
  return done;
}

/** A symlink's target in aim string form. */
export async function readLinkTarget(host: Buffer): Promise<string> {
  return encodePath((await readlink(host, { encoding: 'buffer' })) as Buffer);
}

/**
 * Follows symlinks of an image path inside a chroot at `root` (see walkInImage), so nothing
 * outside the root is ever looked at. Gives the final image path (aim string form), or undefined
 * when a component is missing or the links loop.
 */
export async function resolveInRoot(root: string, path: string, maxLinks = 40): Promise<string | undefined> {
  const rootBytes = Buffer.from(root.replace(/\/+$/, ''));
  const done = await walkInImage(
    path,
    async (candidate): Promise<WalkStep> => {
      const host = Buffer.concat([rootBytes, decodePath('/' + candidate.join('/'))]);
      const st = await lstat(host).catch(() => undefined);
      if (!st) return { kind: 'stop' };
      return st.isSymbolicLink() ? { kind: 'link', target: await readLinkTarget(host) } : { kind: 'dir' };
    },
    maxLinks,
  );
  return done && '/' + done.join('/');
}
