import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  loadDpkgDatabase,
  parseDpkgConffiles,
  parseDpkgDiversions,
  parseDpkgList,
  parseDpkgMd5sums,
  parseDpkgStatus,
} from '../../src/core/analyze/dpkg.js';

const STATUS = `Package: coreutils
Essential: yes
Status: install ok installed
Priority: required
Section: utils
Installed-Size: 18062
Maintainer: Michael Stone <mstone@debian.org>
Architecture: amd64
Multi-Arch: foreign
Version: 9.1-1
Pre-Depends: libacl1 (>= 2.2.23), libattr1 (>= 1:2.4.44),
 libc6 (>= 2.34)
Description: GNU core utilities
 This package contains the basic file, shell and text manipulation
 utilities which are expected to exist on every operating system.
 .
 Second paragraph.
Homepage: https://www.gnu.org/software/coreutils/

Package: libc6
Status: install ok installed
Priority: optional
Section: libs
Installed-Size: 13001
Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>
Architecture: amd64
Multi-Arch: same
Source: glibc
Version: 2.36-9+deb12u10
Depends: libgcc-s1
Conffiles:
 /etc/ld.so.conf.d/x86_64-linux-gnu.conf d4e7a7b88a71b5ffd9e2644e71a0cfab
Description: GNU C Library: Shared libraries

Package: libc6
Status: install ok installed
Architecture: i386
Multi-Arch: same
Source: glibc
Version: 2.36-9+deb12u10
Description: GNU C Library: Shared libraries

Package: bash
Essential: yes
Status: install ok installed
Architecture: amd64
Source: bash (5.2.15-2)
Version: 5.2.15-2+b7
Conffiles:
 /etc/bash.bashrc 89269e1298235f1b12b4c16e4065ad0d
 /etc/skel/.bashrc 0a6ebd7f8f5e8e2e4e3b06b5c30cd4cf obsolete
 /etc/old thing.conf newconffile remove-on-upgrade
Description: GNU Bourne Again SHell

Package: removed-but-configured
Status: deinstall ok config-files
Architecture: all
Version: 1.0

Package: purged
Status: purge ok not-installed
Architecture: amd64

Package: no-list
Status: install ok installed
Architecture: amd64
Version: 1
`;

describe('parseDpkgStatus', () => {
  const pkgs = parseDpkgStatus(STATUS);
  const byId = new Map(pkgs.map((p) => [p.id, p]));

  it('keeps every package that is on disk and drops not-installed ones', () => {
    expect(pkgs.map((p) => p.id)).toEqual(['coreutils', 'libc6:amd64', 'libc6:i386', 'bash', 'removed-but-configured', 'no-list']);
  });

  it('reads the fields', () => {
    expect(byId.get('coreutils')).toMatchObject({
      manager: 'dpkg',
      name: 'coreutils',
      version: '9.1-1',
      arch: 'amd64',
      source: 'coreutils',
      sourceVersion: '9.1-1',
      status: 'install ok installed',
      state: 'installed',
      installedSize: 18062 * 1024,
      multiArch: 'foreign',
      essential: true,
      priority: 'required',
      section: 'utils',
      maintainer: 'Michael Stone <mstone@debian.org>',
      homepage: 'https://www.gnu.org/software/coreutils/',
      description: 'GNU core utilities',
      preDepends: 'libacl1 (>= 2.2.23), libattr1 (>= 1:2.4.44), libc6 (>= 2.34)',
    });
    expect(byId.get('libc6:amd64')).toMatchObject({ name: 'libc6', source: 'glibc', sourceVersion: '2.36-9+deb12u10', depends: 'libgcc-s1' });
    expect(byId.get('libc6:amd64')!.essential).toBeUndefined();
  });

  it('splits "Source: name (version)" for binNMUs', () => {
    expect(byId.get('bash')).toMatchObject({ source: 'bash', sourceVersion: '5.2.15-2', version: '5.2.15-2+b7' });
  });

  it('records the state of packages that are not fully installed', () => {
    expect(byId.get('removed-but-configured')).toMatchObject({ status: 'deinstall ok config-files', state: 'config-files' });
  });

  it('reads Conffiles with md5 and flags', () => {
    expect(byId.get('bash')!.conffiles).toEqual([
      { path: '/etc/bash.bashrc', md5: '89269e1298235f1b12b4c16e4065ad0d' },
      { path: '/etc/skel/.bashrc', md5: '0a6ebd7f8f5e8e2e4e3b06b5c30cd4cf', obsolete: true },
      { path: '/etc/old thing.conf', removeOnUpgrade: true },
    ]);
  });

  it('tolerates CRLF, junk lines and stray continuations', () => {
    const text = ' stray continuation\r\nnot a field\r\nPackage: x\r\nStatus: install ok installed\r\nVersion: 1\r\n\r\n\r\n';
    expect(parseDpkgStatus(text)).toMatchObject([{ name: 'x', version: '1', arch: '', state: 'installed' }]);
    expect(parseDpkgStatus('')).toEqual([]);
  });
});

describe('dpkg info files', () => {
  it('parses .list as raw paths, keeping bytes that are not UTF-8', () => {
    const list = Buffer.concat([Buffer.from('/.\n/usr\n/usr/bin\n/usr/bin/ls\n/usr/share/caf'), Buffer.from([0xe9]), Buffer.from('\n\nrelative\n')]);
    expect(parseDpkgList(list)).toEqual(['/', '/usr', '/usr/bin', '/usr/bin/ls', '/usr/share/caf%E9']);
  });

  it('parses .md5sums into absolute paths', () => {
    const m = parseDpkgMd5sums(
      Buffer.from('7a4179e324c784b99e98fedee05260f7  bin/cat\nDB0817401CFD9C5A818AE919D10BA7C5 *usr/bin/with space\nnot-a-sum  x\n'),
    );
    expect([...m]).toEqual([
      ['/bin/cat', '7a4179e324c784b99e98fedee05260f7'],
      ['/usr/bin/with space', 'db0817401cfd9c5a818ae919d10ba7c5'],
    ]);
  });

  it('parses .conffiles with flags', () => {
    expect(parseDpkgConffiles(Buffer.from('/etc/a.conf\nremove-on-upgrade /etc/b.conf\n\n'))).toEqual([
      { path: '/etc/a.conf' },
      { path: '/etc/b.conf', removeOnUpgrade: true },
    ]);
  });

  it('parses diversions triples, ":" meaning local', () => {
    expect(parseDpkgDiversions(Buffer.from('/usr/bin/a\n/usr/bin/a.distrib\npkg-x\n/etc/b\n/etc/b.orig\n:\n/trailing\n'))).toEqual([
      { from: '/usr/bin/a', to: '/usr/bin/a.distrib', by: 'pkg-x' },
      { from: '/etc/b', to: '/etc/b.orig' },
    ]);
  });
});

describe('loadDpkgDatabase', () => {
  const files: Record<string, string> = {
    status: STATUS,
    'info/coreutils.list': '/.\n/usr\n/usr/bin\n/usr/bin/ls\n/usr/bin/md5sum\n',
    'info/coreutils.md5sums': '0123456789abcdef0123456789abcdef  usr/bin/ls\n',
    'info/libc6:amd64.list': '/.\n/etc\n/etc/ld.so.conf.d/x86_64-linux-gnu.conf\n/lib/x86_64-linux-gnu/libc.so.6\n',
    'info/libc6:amd64.conffiles': '/etc/ld.so.conf.d/x86_64-linux-gnu.conf\nremove-on-upgrade /etc/gone.conf\n',
    'info/libc6:i386.list': '/.\n/lib/i386-linux-gnu/libc.so.6\n',
    'info/bash.list': '/.\n/usr/bin/bash\n/usr/bin/md5sum\n',
    'info/removed-but-configured.list': '/etc/kept.conf\n',
    diversions: '/usr/bin/md5sum\n/usr/bin/md5sum.coreutils\nbash\n',
  };
  const read = async (rel: string) => (rel in files ? Buffer.from(files[rel]!) : undefined);

  it('joins status and info files and applies diversions', async () => {
    const db = (await loadDpkgDatabase(read))!;
    expect(db.manager).toBe('dpkg');
    expect(db.files.get('coreutils')).toEqual(['/', '/usr', '/usr/bin', '/usr/bin/ls', '/usr/bin/md5sum.coreutils']);
    // The diverting package keeps the original path.
    expect(db.files.get('bash')).toEqual(['/', '/usr/bin/bash', '/usr/bin/md5sum']);
    expect(db.files.get('libc6:i386')).toEqual(['/', '/lib/i386-linux-gnu/libc.so.6']);
    expect(db.files.get('removed-but-configured')).toEqual(['/etc/kept.conf']);
    expect(db.diversions).toEqual([{ from: '/usr/bin/md5sum', to: '/usr/bin/md5sum.coreutils', by: 'bash' }]);
    const byId = new Map(db.packages.map((p) => [p.id, p]));
    expect(byId.get('coreutils')!.digests).toEqual({ '/usr/bin/ls': 'md5:0123456789abcdef0123456789abcdef' });
    expect(byId.get('libc6:amd64')!.conffiles).toEqual([
      { path: '/etc/ld.so.conf.d/x86_64-linux-gnu.conf', md5: 'd4e7a7b88a71b5ffd9e2644e71a0cfab' },
      { path: '/etc/gone.conf', removeOnUpgrade: true },
    ]);
    expect(db.problems).toEqual([expect.objectContaining({ code: 'W_DPKG_NO_LIST', message: expect.stringContaining('no-list') })]);
  });

  it('returns undefined without a status file', async () => {
    expect(await loadDpkgDatabase(async () => undefined)).toBeUndefined();
  });

  it.skipIf(!existsSync('/var/lib/dpkg/status'))("reads this machine's dpkg database", async () => {
    const db = (await loadDpkgDatabase(async (rel) => {
      try {
        return readFileSync(`/var/lib/dpkg/${rel}`);
      } catch {
        return undefined;
      }
    }))!;
    const coreutils = db.packages.find((p) => p.name === 'coreutils')!;
    expect(coreutils).toMatchObject({ essential: true, state: 'installed', source: 'coreutils' });
    expect(coreutils.version).toMatch(/^\d/);
    const files = db.files.get(coreutils.id)!;
    expect(files.some((f) => f === '/bin/ls' || f === '/usr/bin/ls')).toBe(true);
    const libc = db.packages.find((p) => p.name === 'libc6')!;
    expect(libc.source).toBe('glibc');
    expect(db.files.get(libc.id)).toContain('/lib/x86_64-linux-gnu/libc.so.6');
    // One package per Status line that is not "not-installed".
    const statusCount = readFileSync('/var/lib/dpkg/status', 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('Status: ') && !l.endsWith(' not-installed')).length;
    expect(db.packages.length).toBe(statusCount);
  });
});
