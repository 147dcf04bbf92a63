import { createHash } from 'node:crypto';
import { readdir, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { InputError, NotFoundError, errnoCode } from '../../lib/errors.js';
import { sha256File } from '../../lib/fs.js';
import { readDeb, type DebFile, type DebPackage } from '../debian/deb-file.js';
import { readPackagesIndex } from '../debian/packages-index.js';
import { compareDebianVersions } from '../debian/version.js';
import type { StoredContent } from '../import/source.js';
import { isHole, type ContentChunk } from '../model/sparse.js';
import type { PackageRecord } from '../repository/types.js';
import { sniff } from './update.js';
import type { StoredDeb } from './update-plan.js';

/**
 * The packages `aim update --with` installs: .deb files, folders of them, or an apt Packages index
 * whose .debs lie where its Filename fields say (an archive mirror, or beside the index). A folder
 * or an index offers packages; those installed in the image at an older version are taken. A .deb
 * named on its own must be for an installed package.
 */

export interface DebChoice {
  file: string;
  /** Given by name (an error when not installed) or offered by a folder or an index (left out then). */
  explicit: boolean;
}

export interface ChosenDebs {
  debs: DebChoice[];
  /** What was offered and left out, and why. */
  notes: string[];
}

const needsDebs = (input: string, what: string) =>
  new InputError('E_UPDATE_NEEDS_DEBS', `${input} is ${what}: aim update installs packages and needs their .deb files`, {
    hint: 'give .deb files, a folder of them, or a Packages index with its .debs (apt-get download PACKAGE=VERSION fetches one); aim impact takes advisories',
  });

const installedKey = (name: string, arch: string) => `${name}\0${arch}`;

/** Whether an installed package (of this name and architecture, or "all") is older than `version`. */
function olderInstalled(installed: ReadonlyMap<string, PackageRecord[]>, name: string, arch: string, version: string): PackageRecord | undefined {
  for (const p of installed.get(name) ?? []) {
    if (arch !== 'all' && p.arch !== 'all' && p.arch !== arch) continue;
    if (compareDebianVersions(p.version, version) < 0) return p;
  }
  return undefined;
}

/** Where a Packages stanza's .deb is: under the archive root (an ancestor of the index) or beside the index. */
async function locateDeb(index: string, filename: string, size?: number, sha256?: string): Promise<string | undefined> {
  const candidates: string[] = [];
  let dir = dirname(index);
  for (let i = 0; i < 7; i++) {
    candidates.push(join(dir, filename));
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  candidates.push(join(dirname(index), basename(filename)));
  for (const c of candidates) {
    const st = await stat(c).catch(() => undefined);
    if (!st?.isFile()) continue;
    if (size !== undefined && st.size !== size) continue;
    if (sha256 !== undefined && (await sha256File(c)) !== sha256) {
      throw new InputError('E_UPDATE_DEB_MISMATCH', `${c} does not have the SHA256 its index ${index} gives`, { hint: 'download the .deb again' });
    }
    return c;
  }
  return undefined;
}

/** Chooses the .debs to install from `inputs`, against the packages installed in the image. */
export async function chooseDebs(inputs: readonly string[], installedPackages: readonly PackageRecord[]): Promise<ChosenDebs> {
  const installed = new Map<string, PackageRecord[]>();
  for (const p of installedPackages.filter((x) => x.manager === 'dpkg')) installed.set(p.name, [...(installed.get(p.name) ?? []), p]);
  const out: ChosenDebs = { debs: [], notes: [] };
  const offer = async (file: string, label: string) => {
    const d = await readDeb(file, { skipData: true });
    if (olderInstalled(installed, d.package, d.arch, d.version)) out.debs.push({ file, explicit: false });
    else out.notes.push(`${label}: ${d.package} ${d.version} left out (${installed.has(d.package) ? 'not newer than installed' : 'not installed'})`);
  };
  for (const given of inputs) {
    const input = resolve(given);
    let st;
    try {
      st = await stat(input);
    } catch (e) {
      if (errnoCode(e) !== 'ENOENT') throw e;
      if (given.includes('=')) throw needsDebs(given, 'a PACKAGE=VERSION');
      throw new NotFoundError(`${given} does not exist`, { hint: 'give .deb files, a folder of them, or a Packages index' });
    }
    if (st.isDirectory()) {
      const names = (await readdir(input)).filter((n) => n.endsWith('.deb')).sort();
      if (names.length === 0) throw new InputError('E_EMPTY_INPUT', `${given} holds no .deb file`, { hint: 'give a folder of .deb files' });
      for (const n of names) await offer(join(input, n), join(given, n));
      continue;
    }
    if (!st.isFile()) throw new InputError('E_NOT_A_FILE', `${given} is not a regular file or a directory`);
    if (st.size === 0) throw new InputError('E_EMPTY_INPUT', `${given} is empty`);
    const kind = await sniff(input);
    if (kind === 'deb') out.debs.push({ file: input, explicit: true });
    else if (kind === 'osv') throw needsDebs(given, 'an OSV advisory');
    else {
      const newest = new Map<string, { pkg: string; arch: string; version: string; filename?: string; size?: number; sha256?: string }>();
      for await (const p of readPackagesIndex(input, given)) {
        if (!olderInstalled(installed, p.package, p.arch, p.version)) continue;
        const key = installedKey(p.package, p.arch);
        const known = newest.get(key);
        if (!known || compareDebianVersions(p.version, known.version) > 0) newest.set(key, { pkg: p.package, arch: p.arch, version: p.version, filename: p.filename, size: p.size, sha256: p.sha256 });
      }
      if (newest.size === 0) out.notes.push(`${given}: no package newer than what the image has installed`);
      for (const p of newest.values()) {
        const file = p.filename === undefined ? undefined : await locateDeb(input, p.filename, p.size, p.sha256);
        if (!file) {
          throw new InputError('E_UPDATE_DEB_MISSING', `${given} offers ${p.pkg} ${p.version}, but its .deb (${p.filename ?? 'no Filename field'}) is not at hand`, {
            hint: `put ${basename(p.filename ?? `${p.pkg}.deb`)} beside the index or under the archive root its Filename is relative to (apt-get download ${p.pkg}=${p.version})`,
          });
        }
        out.debs.push({ file, explicit: false });
      }
    }
  }
  return out;
}

/** Stores content through `store` while hashing it with md5, as dpkg's md5sums need. */
function md5Tee(store: (content: AsyncIterable<ContentChunk>) => Promise<StoredContent>, sums: Map<StoredContent, string>) {
  return async (content: AsyncIterable<ContentChunk>): Promise<StoredContent> => {
    const h = createHash('md5');
    const zeros = Buffer.alloc(1 << 16);
    async function* tee(): AsyncGenerator<ContentChunk> {
      for await (const c of content) {
        if (isHole(c)) {
          for (let left = c.hole; left > 0; left -= zeros.length) h.update(left >= zeros.length ? zeros : zeros.subarray(0, left));
        } else h.update(c);
        yield c;
      }
    }
    const stored = { ...(await store(tee())) };
    sums.set(stored, h.digest('hex'));
    return stored;
  };
}

/** Reads a .deb, storing every file's content through `store`, with the md5 of each regular file. */
export async function readStoredDeb(file: string, store: (content: AsyncIterable<ContentChunk>) => Promise<StoredContent>): Promise<StoredDeb> {
  const sums = new Map<StoredContent, string>();
  const deb: DebPackage = await readDeb(file, { storeContent: md5Tee(store, sums) });
  const md5 = new Map<DebFile, string>();
  for (const f of deb.files) if (f.type === 'file' && f.content && sums.has(f.content)) md5.set(f, sums.get(f.content)!);
  return { ...deb, md5 };
}
