import { execa } from 'execa';

export interface ListedMember {
  name: string;
  type: 'file' | 'dir' | 'symlink' | 'hardlink' | 'other';
  linkname: string;
}

/** The members of a tar as Python's tarfile reads them (a reader independent of aim's). */
export async function listTar(path: string): Promise<ListedMember[]> {
  const script = `
import json, sys, tarfile
out = []
with tarfile.open(sys.argv[1]) as t:
    for m in t:
        kind = 'file' if m.isreg() else 'dir' if m.isdir() else 'symlink' if m.issym() else 'hardlink' if m.islnk() else 'other'
        out.append({'name': m.name, 'type': kind, 'linkname': m.linkname})
print(json.dumps(out))
`;
  const { stdout } = await execa('python3', ['-c', script, path]);
  return JSON.parse(stdout) as ListedMember[];
}

const norm = (name: string) => name.replace(/^\.\//, '').replace(/\/$/, '').replace(/^\.$/, '');
const parentOf = (name: string) => (name.includes('/') ? name.slice(0, name.lastIndexOf('/')) : '');

/**
 * What makes a tar unsafe for a naive extractor, as readable lines (empty when safe): a member
 * below a symlink or other non-directory (whether that comes earlier or later), a member before
 * its directory, a hard link to anything but an earlier regular file, a name listed twice.
 */
export function tarHazards(members: readonly ListedMember[]): string[] {
  const hazards: string[] = [];
  const byName = new Map<string, ListedMember>();
  for (const m of members) {
    const n = norm(m.name);
    if (byName.has(n)) hazards.push(`${n} listed twice`);
    byName.set(n, m);
  }
  const seen = new Set<string>(['']);
  for (const m of members) {
    const n = norm(m.name);
    if (n !== '') {
      for (let p = parentOf(n); ; p = parentOf(p)) {
        const parent = byName.get(p);
        if (parent && parent.type !== 'dir') hazards.push(`${n} lies below ${p}, a ${parent.type}`);
        if (p === '') break;
      }
      if (!seen.has(parentOf(n))) hazards.push(`${n} comes before its directory ${parentOf(n)}`);
    }
    if (m.type === 'hardlink') {
      const target = byName.get(norm(m.linkname));
      if (!target || target.type !== 'file' || !seen.has(norm(m.linkname))) hazards.push(`${n} is a hard link to ${m.linkname}, not an earlier regular file`);
    }
    seen.add(n);
  }
  return hazards;
}
