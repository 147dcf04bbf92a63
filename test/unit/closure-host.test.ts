import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, lstatSync, openSync, readdirSync, readFileSync, readlinkSync, readSync, realpathSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseElf } from '../../src/core/analyze/elf.js';
import { resolveImagePath } from '../../src/core/analyze/resolve.js';
import type { ElfFacts } from '../../src/core/analyze/elf.js';
import { computeClosure, explainPath } from '../../src/core/closure/index.js';
import { parentPath } from '../../src/core/model/entry.js';
import type { Entry } from '../../src/core/model/entry.js';

/**
 * The closure of the host's real /usr/bin/ls, over an Entry map built from the host filesystem
 * (lstat, readlink) and ELF facts from parseElf, compared with what ldd says.
 */

const LS = '/usr/bin/ls';

function ldd(path: string): { libs: Map<string, string>; interp?: string } {
  const out = execFileSync('ldd', [path], { encoding: 'utf8' });
  const libs = new Map<string, string>();
  let interp: string | undefined;
  for (const line of out.split('\n')) {
    const m = /^\s*(\S+) => (\/\S+) \(0x/.exec(line);
    if (m) libs.set(m[1]!, m[2]!);
    else {
      const i = /^\s*(\/\S+) \(0x/.exec(line);
      if (i) interp = i[1]!;
    }
  }
  return { libs, interp };
}

class HostImage {
  readonly entries = new Map<string, Entry>();
  readonly hostPath = new Map<string, string>();
  readonly elf = new Map<string, ElfFacts>();

  add(path: string): void {
    if (this.entries.has(path)) return;
    if (path !== '/') this.add(parentPath(path));
    const st = lstatSync(path);
    const base = { path, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: Math.floor(st.mtimeMs / 1000) };
    if (st.isSymbolicLink()) this.entries.set(path, { ...base, type: 'symlink', target: readlinkSync(path) });
    else if (st.isDirectory()) this.entries.set(path, { ...base, type: 'dir' });
    else if (st.isFile()) {
      // A stand-in blob id: hashing every library of the host would be slow and proves nothing here.
      const blob = createHash('sha256').update(path).digest('hex');
      this.hostPath.set(blob, path);
      this.entries.set(path, { ...base, type: 'file', size: st.size, blob });
    }
  }

  /** The directory and every entry directly in it. */
  addDir(dir: string): void {
    if (!existsSync(dir)) return;
    this.add(dir);
    if (!lstatSync(dir).isDirectory()) return;
    for (const name of readdirSync(dir)) this.add(`${dir}/${name}`);
  }

  async parseElfs(filter: (path: string) => boolean): Promise<void> {
    for (const e of this.entries.values()) {
      if (e.type !== 'file' || !filter(e.path) || (e.size ?? 0) < 64) continue;
      const fd = openSync(e.path, 'r');
      try {
        const facts = await parseElf(async (offset, length) => {
          const b = Buffer.alloc(length);
          const n = readSync(fd, b, 0, length, offset);
          return b.subarray(0, n);
        }, e.size!);
        if (facts) this.elf.set(e.blob!, facts);
      } finally {
        closeSync(fd);
      }
    }
  }
}

const usable = existsSync(LS) && (() => {
  try {
    return ldd(LS).libs.has('libc.so.6');
  } catch {
    return false;
  }
})();

describe.skipIf(!usable)('closure of the host /usr/bin/ls', () => {
  it('contains what ldd loads, the dynamic loader through its /lib64 symlink chain, and explains it', async () => {
    const img = new HostImage();
    for (const d of ['/lib', '/lib64', '/usr/lib64', '/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/etc/ld.so.conf.d', '/usr/local/lib']) img.addDir(d);
    for (const f of ['/etc/ld.so.conf', '/etc/ld.so.cache', '/etc/nsswitch.conf', '/etc/passwd', '/etc/group', LS]) if (existsSync(f)) img.add(f);
    await img.parseElfs((p) => p === LS || /\.so(\.|$)/.test(p));

    const closure = await computeClosure({
      entries: img.entries,
      elf: (b) => img.elf.get(b),
      readBlob: async (b) => readFileSync(img.hostPath.get(b)!),
      seeds: [{ path: LS, reason: { kind: 'traced', syscall: 'execve' } }],
    });

    const { libs, interp } = ldd(LS);
    for (const name of ['libc.so.6', 'libselinux.so.1', 'libpcre2-8.so.0']) expect(libs.has(name), `ldd ${LS} lists ${name}`).toBe(true);
    for (const [name, path] of libs) {
      const real = realpathSync(path);
      expect(closure.kept.has(real), `${name} → ${real}`).toBe(true);
      expect(closure.kept.get(real)!.some((r) => r.kind === 'needed' && r.soname === name)).toBe(true);
    }
    // The loader: PT_INTERP /lib64/ld-linux-x86-64.so.2, kept link by link to the real file.
    expect(interp).toBeDefined();
    const ldso = realpathSync(interp!);
    expect(closure.kept.get(ldso)).toContainEqual({ kind: 'interp', of: LS });
    const named = resolveImagePath(img.entries, interp!, { followFinal: false })!;
    expect(closure.kept.get(named)).toContainEqual({ kind: 'interp', of: LS });
    for (const link of ['/lib64', '/lib']) {
      if (lstatSync(link).isSymbolicLink()) expect(closure.kept.get(link)?.[0]?.kind, link).toBe('symlink');
    }

    const libc = realpathSync(libs.get('libc.so.6')!);
    expect(explainPath(closure, img.entries, libc).reasons).toContain(`${libc} is DT_NEEDED by ${LS} (traced: execve)`);
    const pcreReal = realpathSync(libs.get('libpcre2-8.so.0')!);
    expect(explainPath(closure, img.entries, pcreReal).reasons[0]).toMatch(
      new RegExp(`is DT_NEEDED (as libpcre2-8\\.so\\.0 )?by .*libselinux\\.so\\.1, which is DT_NEEDED by /usr/bin/ls \\(traced: execve\\)$`),
    );
    expect(explainPath(closure, img.entries, ldso).reasons[0]).toBe(`${ldso} is the PT_INTERP (dynamic loader, mapped by the kernel at execve) of ${LS} (traced: execve)`);
    expect(closure.warnings.filter((w) => w.includes('DT_NEEDED'))).toEqual([]);
  });
});
