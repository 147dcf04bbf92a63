import { AimError, ExitCode } from '../../lib/errors.js';
import { comparePaths } from '../../lib/path-codec.js';
import { parentPath, type Entry } from '../model/entry.js';

/** The image's manifest holds entries no extractor can write safely; older imports let some through. */
export class UnsafeManifestError extends AimError {
  constructor(message: string) {
    super('E_UNSAFE_MANIFEST', message, ExitCode.integrity, {
      hint: 'the image was stored by an older aim that accepted this; import its source again (this version refuses or resolves it) or remove the image',
    });
  }
}

const KIND: Record<Exclude<Entry['type'], 'symlink' | 'hardlink'>, string> = {
  file: 'a regular file',
  dir: 'a directory',
  fifo: 'a fifo',
  char: 'a character device',
  block: 'a block device',
};
const describe = (e: Entry) => (e.type === 'symlink' ? `a symlink (-> ${e.target})` : e.type === 'hardlink' ? `a hard link (to ${e.target})` : KIND[e.type]);

function canonical(path: string): boolean {
  if (path === '/') return true;
  if (!path.startsWith('/')) return false;
  return path.slice(1).split('/').every((c) => c !== '' && c !== '.' && c !== '..');
}

/**
 * The entries of an image in an order every extractor can follow without writing through a link:
 * sorted so each directory comes before what it holds; every entry's parent is a directory of the
 * image (never a symlink or another non-directory, whether it comes earlier or later); hard links
 * only to an earlier regular file. A hard link to anything else (a symlink, fifo or device: a
 * naive extractor's link() may follow a symlink to a host file) becomes a copy of that entry.
 * Anything contradictory is refused with an UnsafeManifestError naming both entries. Pure.
 */
export function safeTreeEntries(entries: readonly Entry[]): Entry[] {
  const sorted = [...entries].sort((a, b) => comparePaths(a.path, b.path));
  const byPath = new Map<string, Entry>();
  for (const e of sorted) {
    if (!canonical(e.path)) throw new UnsafeManifestError(`"${e.path}" is not a canonical absolute path`);
    const twin = byPath.get(e.path);
    if (twin) throw new UnsafeManifestError(`"${e.path}" is listed twice: as ${describe(twin)} and as ${describe(e)}`);
    byPath.set(e.path, e);
  }
  const out: Entry[] = [];
  for (const e of sorted) {
    if (e.path === '/') {
      if (e.type !== 'dir') throw new UnsafeManifestError(`the root "/" is ${describe(e)}, not a directory`);
      out.push(e);
      continue;
    }
    const parent = byPath.get(parentPath(e.path));
    if (!parent) throw new UnsafeManifestError(`"${e.path}" has no parent directory "${parentPath(e.path)}" in the image`);
    if (parent.type !== 'dir') throw new UnsafeManifestError(`"${e.path}" lies below "${parent.path}", which is ${describe(parent)}`);
    out.push(e.type === 'hardlink' ? linkOrCopy(e, byPath) : e);
  }
  return out;
}

/** A hard link to its regular file (which sorts earlier), or a copy of the non-file it names. */
function linkOrCopy(link: Entry, byPath: ReadonlyMap<string, Entry>): Entry {
  let target = byPath.get(link.target ?? '');
  // chains (never written by aim, which links every name to the group's first) end at their file
  for (let hops = 0; target?.type === 'hardlink' && hops < byPath.size; hops++) target = byPath.get(target.target ?? '');
  if (!target || target.type === 'hardlink') throw new UnsafeManifestError(`"${link.path}" is a hard link to "${link.target}", which is not in the image`);
  if (target.type === 'dir') throw new UnsafeManifestError(`"${link.path}" is a hard link to "${target.path}", which is a directory`);
  if (target.type !== 'file') {
    const { path: _, ...rest } = target;
    return { ...rest, path: link.path };
  }
  if (comparePaths(target.path, link.path) >= 0) {
    throw new UnsafeManifestError(`"${link.path}" is a hard link to "${target.path}", which comes after it: an extractor would link to a file not written yet`);
  }
  return target.path === link.target ? link : { ...link, target: target.path };
}
