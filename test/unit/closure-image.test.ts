import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { ElfFacts } from '../../src/core/analyze/elf.js';
import { computeClosure, explainPath } from '../../src/core/closure/index.js';
import type { Closure, ClosureInput, Reason } from '../../src/core/closure/index.js';
import { resolveImagePath } from '../../src/core/analyze/resolve.js';
import { joinImagePath, parentPath } from '../../src/core/model/entry.js';
import type { Entry } from '../../src/core/model/entry.js';

/** An in-memory image: entries, blob contents and ELF facts, parents created on demand. */
class FakeImage {
  readonly entries = new Map<string, Entry>();
  readonly blobs = new Map<string, Buffer>();
  readonly elf = new Map<string, ElfFacts>();

  constructor() {
    this.entries.set('/', { path: '/', type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: 0 });
  }
  private parents(path: string): void {
    const p = parentPath(path);
    if (this.entries.has(p)) return;
    this.dir(p);
  }
  dir(path: string, mode = 0o755): this {
    this.parents(path);
    this.entries.set(path, { path, type: 'dir', mode, uid: 0, gid: 0, mtime: 0 });
    return this;
  }
  file(path: string, content: string | Buffer, mode = 0o644): this {
    this.parents(path);
    const buf = Buffer.from(content);
    const blob = createHash('sha256').update(buf).digest('hex');
    this.blobs.set(blob, buf);
    const e: Entry = { path, type: 'file', mode, uid: 0, gid: 0, mtime: 0, size: buf.length };
    if (buf.length > 0) e.blob = blob;
    this.entries.set(path, e);
    return this;
  }
  elfFile(path: string, facts: Partial<ElfFacts> = {}, mode = 0o755): this {
    this.file(path, `\x7fELF ${path}`, mode);
    this.elf.set(this.entries.get(path)!.blob!, { class: 64, endian: 'le', machine: 'x86-64', type: 'dyn', needed: [], ...facts });
    return this;
  }
  lib(dir: string, soname: string, version: string, facts: Partial<ElfFacts> = {}): this {
    this.elfFile(`${dir}/${soname}${version}`, { soname, ...facts }, 0o644);
    if (version !== '') this.link(`${dir}/${soname}`, `${soname}${version}`);
    return this;
  }
  link(path: string, target: string): this {
    this.parents(path);
    this.entries.set(path, { path, type: 'symlink', mode: 0o777, uid: 0, gid: 0, mtime: 0, target });
    return this;
  }
  hard(path: string, target: string): this {
    this.parents(path);
    const t = this.entries.get(target)!;
    this.entries.set(path, { ...t, path, type: 'hardlink', target });
    return this;
  }
  char(path: string): this {
    this.parents(path);
    this.entries.set(path, { path, type: 'char', mode: 0o666, uid: 0, gid: 0, mtime: 0, devMajor: 1, devMinor: 3 });
    return this;
  }
  input(seeds: ClosureInput['seeds'], extra: Partial<ClosureInput> = {}): ClosureInput {
    return {
      entries: this.entries,
      elf: (b) => this.elf.get(b),
      readBlob: async (b) => {
        const buf = this.blobs.get(b);
        if (!buf) throw new Error(`no blob ${b}`);
        return buf;
      },
      seeds,
      ...extra,
    };
  }
}

const MA = '/usr/lib/x86_64-linux-gnu';
const LD = `${MA}/ld-linux-x86-64.so.2`;
const libc = { needed: ['ld-linux-x86-64.so.2'], interp: '/lib64/ld-linux-x86-64.so.2' };

/** A usr-merged Debian bookworm–like image with nginx, a Python app, a legacy RPATH tool and a Perl script. */
function debianImage(): FakeImage {
  const img = new FakeImage();
  img
    .dir('/usr/bin')
    .dir('/usr/sbin')
    .dir(MA)
    .link('/bin', 'usr/bin')
    .link('/sbin', 'usr/sbin')
    .link('/lib', 'usr/lib')
    .link('/lib64', 'usr/lib64')
    .elfFile(LD, { soname: 'ld-linux-x86-64.so.2' })
    .link('/usr/lib64/ld-linux-x86-64.so.2', '/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2')
    .elfFile(`${MA}/libc.so.6`, { soname: 'libc.so.6', ...libc }, 0o755)
    .lib(MA, 'libpcre2-8.so.0', '.11.2', { needed: ['libc.so.6'] })
    .lib(MA, 'libcrypto.so.3', '', { needed: ['libc.so.6'] })
    .lib(MA, 'libssl.so.3', '', { needed: ['libcrypto.so.3', 'libc.so.6'] })
    .lib(MA, 'libz.so.1', '.2.13', { needed: ['libc.so.6'] })
    .elfFile(`${MA}/glibc-hwcaps/x86-64-v3/libz.so.1.2.13`, { soname: 'libz.so.1', needed: ['libc.so.6'] }, 0o644)
    .link(`${MA}/glibc-hwcaps/x86-64-v3/libz.so.1`, 'libz.so.1.2.13')
    .lib(MA, 'libnss_systemd.so.2', '', { needed: ['libc.so.6'] })
    .lib(MA, 'libnss_mdns4_minimal.so.2', '', { needed: ['libc.so.6'] })
    .lib(MA, 'libperl.so.5.36', '', { needed: ['libc.so.6'] })
    .lib('/usr/lib/i386-linux-gnu', 'libz.so.1', '.2.13', { class: 32, machine: 'i386' })
    .file(`${MA}/gconv/gconv-modules`, 'module INTERNAL ISO-8859-1// ISO8859-1 1\n')
    .file(`${MA}/gconv/gconv-modules.cache`, 'cache')
    .file(`${MA}/gconv/gconv-modules.d/gconv-modules-extra.conf`, 'module x y z 1\n')
    .elfFile(`${MA}/gconv/ISO8859-1.so`, { needed: ['libc.so.6'] }, 0o644)
    // ld.so.conf with an include glob; a file the glob must not match points at a trap.
    .file('/etc/ld.so.conf', 'include /etc/ld.so.conf.d/*.conf\n')
    .file('/etc/ld.so.conf.d/libc.conf', '# libc default configuration\n/usr/local/lib\n')
    .file('/etc/ld.so.conf.d/nginx.conf', '/usr/local/lib/nginx\n')
    .file('/etc/ld.so.conf.d/x86_64-linux-gnu.conf', '# Multiarch support\n/usr/local/lib/x86_64-linux-gnu\n/lib/x86_64-linux-gnu\n/usr/lib/x86_64-linux-gnu\n')
    .file('/etc/ld.so.conf.d/README.txt', '/opt/trap\n')
    .lib('/opt/trap', 'libc.so.6', '', libc)
    .file('/etc/ld.so.cache', 'ld.so-1.7.0')
    .lib('/usr/local/lib/nginx', 'libmodule.so', '', { needed: ['libc.so.6'] })
    .lib('/usr/local/lib', 'libfoo.so.1', '.2.3', { needed: ['libc.so.6'] })
    // nginx
    .elfFile('/usr/sbin/nginx', {
      type: 'dyn',
      interp: '/lib64/ld-linux-x86-64.so.2',
      needed: ['libpcre2-8.so.0', 'libssl.so.3', 'libcrypto.so.3', 'libz.so.1', 'libmodule.so', 'libc.so.6'],
    })
    .file('/etc/nginx/nginx.conf', 'user www-data;\n')
    .file('/etc/nginx/mime.types', 'types {}\n')
    .file('/etc/nginx/sites-available/default', 'server {}\n')
    .link('/etc/nginx/sites-enabled/default', '/etc/nginx/sites-available/default')
    .file('/usr/share/doc/nginx/copyright', 'BSD')
    .file('/usr/share/doc/nginx/changelog.gz', 'gz')
    .dir('/var/lib/nginx')
    .dir('/var/www/html')
    .dir('/run')
    .link('/var/run', '/run')
    .dir('/tmp', 0o1777)
    .file('/tmp/junk', 'left behind')
    .char('/dev/null')
    // A RUNPATH app: $ORIGIN/../lib holds a 32-bit libz (skipped) and a libfoo its library must not see.
    .elfFile('/opt/app/bin/app', { interp: '/lib64/ld-linux-x86-64.so.2', runpath: ['$ORIGIN/../lib'], needed: ['libapp.so.1', 'libz.so.1', 'libc.so.6'] })
    .lib('/opt/app/lib', 'libapp.so.1', '', { needed: ['libfoo.so.1', 'libc.so.6'] })
    .lib('/opt/app/lib', 'libz.so.1', '', { class: 32, machine: 'i386' })
    .lib('/opt/app/lib', 'libfoo.so.1', '', { needed: ['libc.so.6'] })
    .file('/opt/app/bin/manage.py', '#!/usr/bin/env python3\nimport json\n', 0o755)
    .file('/opt/app/bin/report.pl', '#!/usr/bin/perl -w\nprint 1;\n', 0o755)
    // A legacy DT_RPATH tool: its library's dependency is found through the inherited RPATH.
    .elfFile('/opt/legacy/bin/tool', { interp: '/lib64/ld-linux-x86-64.so.2', rpath: ['/opt/legacy/lib'], needed: ['libleg.so.1', 'libc.so.6'] })
    .lib('/opt/legacy/lib', 'libleg.so.1', '', { needed: ['libleghelper.so.1', 'libc.so.6'] })
    .lib('/opt/legacy/lib', 'libleghelper.so.1', '', { needed: ['libc.so.6'] })
    // Interpreters
    .elfFile('/usr/bin/env', { interp: '/lib64/ld-linux-x86-64.so.2', needed: ['libc.so.6'] })
    .elfFile('/usr/bin/python3.11', { interp: '/lib64/ld-linux-x86-64.so.2', needed: ['libz.so.1', 'libc.so.6'] })
    .link('/usr/bin/python3', 'python3.11')
    .file('/usr/lib/python3.11/os.py', 'import sys\n')
    .file('/usr/lib/python3.11/json/__init__.py', '')
    .file('/usr/lib/python3.11/__pycache__/os.cpython-311.pyc', 'pyc')
    .elfFile('/usr/lib/python3.11/lib-dynload/zlib.cpython-311-x86_64-linux-gnu.so', { needed: ['libz.so.1', 'libc.so.6'] }, 0o644)
    .elfFile('/usr/bin/perl5.36.0', { interp: '/lib64/ld-linux-x86-64.so.2', needed: ['libperl.so.5.36', 'libc.so.6'] })
    .hard('/usr/bin/perl', '/usr/bin/perl5.36.0')
    // libc's configuration and essentials
    .file('/etc/nsswitch.conf', 'passwd:         files systemd\ngroup:          files systemd\nshadow:         files\nhosts:          files mdns4_minimal [NOTFOUND=return] dns myhostname\n')
    .file('/etc/passwd', 'root:x:0:0:root:/root:/bin/bash\nwww-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n')
    .file('/etc/group', 'root:x:0:\nwww-data:x:33:\n')
    .file('/etc/shadow', 'root:*:19000:0:99999:7:::\n', 0o640)
    .file('/etc/hosts', '127.0.0.1 localhost\n')
    .file('/etc/resolv.conf', 'nameserver 127.0.0.53\n')
    .file('/etc/ssl/certs/ca-certificates.crt', '-----BEGIN CERTIFICATE-----\n')
    .file('/usr/share/ca-certificates/mozilla/ACME_Root.crt', '-----BEGIN CERTIFICATE-----\n')
    .link('/etc/ssl/certs/ACME_Root.pem', '/usr/share/ca-certificates/mozilla/ACME_Root.crt')
    .link('/etc/ssl/certs/1a2b3c4d.0', 'ACME_Root.pem')
    .file('/etc/ssl/openssl.cnf', '[openssl_init]\n')
    .link('/usr/lib/ssl/certs', '/etc/ssl/certs')
    .link('/usr/lib/ssl/openssl.cnf', '/etc/ssl/openssl.cnf')
    .file('/usr/share/zoneinfo/Europe/Paris', 'TZif2')
    .file('/usr/share/zoneinfo/Etc/UTC', 'TZif2')
    .link('/etc/localtime', '/usr/share/zoneinfo/Europe/Paris')
    .file('/etc/timezone', 'Europe/Paris\n');
  return img;
}

const traced = (syscall: string, pid = 100): Reason => ({ kind: 'traced', syscall, pid });

function debianInput(img: FakeImage): ClosureInput {
  return img.input(
    [
      { path: '/usr/sbin/nginx', reason: traced('execve') },
      { path: '/usr/sbin/nginx', reason: { kind: 'entrypoint' } },
      { path: '/etc/nginx/sites-enabled/default', reason: traced('openat') },
      { path: '/var/lib/nginx/body', reason: traced('mkdir') },
      { path: '/var/run/nginx.pid', reason: traced('openat') },
      { path: '/dev/null', reason: traced('openat') },
      { path: '/tmp/junk', reason: traced('openat') },
      { path: `${MA}/gconv/gconv-modules.cache`, reason: traced('openat') },
      { path: '/opt/app/bin/app', reason: { kind: 'entrypoint' } },
      { path: '/opt/app/bin/manage.py', reason: { kind: 'entrypoint' } },
      { path: '/opt/app/bin/report.pl', reason: { kind: 'entrypoint' } },
      { path: '/opt/legacy/bin/tool', reason: { kind: 'entrypoint' } },
    ],
    {
      users: ['www-data', '0', 'nobody'],
      packageFiles: new Map([
        ['nginx-common', ['/etc/nginx', '/etc/nginx/nginx.conf', '/usr/share/doc/nginx', '/usr/share/doc/nginx/copyright', '/usr/share/doc/nginx/changelog.gz', '/lib/x86_64-linux-gnu/gone.so']],
        ['libc6:amd64', [`${MA}/libc.so.6`]],
      ]),
      rules: {
        keepPackages: ['nginx-common', 'not-installed'],
        keepGlobs: ['/etc/nginx/*.types'],
        dropGlobs: ['/usr/share/doc/**', '**/__pycache__/**', '/lib/x86_64-linux-gnu/libpcre2*'],
        keepModuleTrees: ['/lib/python3*/'],
      },
    },
  );
}

function kinds(c: Closure, path: string): string[] {
  return (c.kept.get(path) ?? []).map((r) => r.kind);
}

describe('computeClosure on a usr-merged Debian image', async () => {
  const img = debianImage();
  const closure = await computeClosure(debianInput(img));
  const kept = (p: string) => closure.kept.has(p);

  it('keeps the seeds with their evidence, in order', () => {
    expect(closure.kept.get('/usr/sbin/nginx')).toEqual([traced('execve'), { kind: 'entrypoint' }]);
  });

  it('adds the dynamic loader from PT_INTERP with its /lib64 symlink chain', () => {
    expect(kept('/lib64')).toBe(true);
    expect(kept('/usr/lib64')).toBe(true);
    expect(closure.kept.get('/usr/lib64/ld-linux-x86-64.so.2')).toContainEqual({ kind: 'interp', of: '/usr/sbin/nginx' });
    expect(closure.kept.get(LD)).toContainEqual({ kind: 'interp', of: '/usr/sbin/nginx' });
    // The link is absolute to /lib/…, so /lib → usr/lib is on the way too.
    expect(closure.kept.get('/lib')).toContainEqual({ kind: 'symlink', of: '/lib64/ld-linux-x86-64.so.2' });
    expect(closure.kept.get('/lib64')).toEqual([{ kind: 'symlink', of: '/lib64/ld-linux-x86-64.so.2' }]);
  });

  it('resolves DT_NEEDED through ld.so.conf includes, keeping .so version links and their targets', () => {
    expect(closure.kept.get(`${MA}/libpcre2-8.so.0`)).toContainEqual({ kind: 'needed', of: '/usr/sbin/nginx', soname: 'libpcre2-8.so.0' });
    expect(closure.kept.get(`${MA}/libpcre2-8.so.0.11.2`)).toContainEqual({ kind: 'needed', of: '/usr/sbin/nginx', soname: 'libpcre2-8.so.0' });
    expect(kept('/usr/local/lib/nginx/libmodule.so')).toBe(true);
    for (const l of ['libssl.so.3', 'libcrypto.so.3', 'libc.so.6', 'libz.so.1.2.13']) expect(kept(`${MA}/${l}`)).toBe(true);
    // transitively: libssl needs libcrypto
    expect(closure.kept.get(`${MA}/libcrypto.so.3`)).toContainEqual({ kind: 'needed', of: `${MA}/libssl.so.3`, soname: 'libcrypto.so.3' });
    // README.txt is not *.conf: its directory is never searched.
    expect(kept('/opt/trap/libc.so.6')).toBe(false);
    expect(kept('/opt/trap')).toBe(false);
  });

  it('keeps every glibc-hwcaps variant of a library', () => {
    expect(kept(`${MA}/glibc-hwcaps/x86-64-v3/libz.so.1`)).toBe(true);
    expect(kept(`${MA}/glibc-hwcaps/x86-64-v3/libz.so.1.2.13`)).toBe(true);
  });

  it('expands $ORIGIN in DT_RUNPATH, skips other ELF classes, and does not let RUNPATH reach the dependencies', () => {
    expect(closure.kept.get('/opt/app/lib/libapp.so.1')).toContainEqual({ kind: 'needed', of: '/opt/app/bin/app', soname: 'libapp.so.1' });
    expect(kept('/opt/app/lib/libz.so.1')).toBe(false); // 32-bit
    expect(kept('/usr/lib/i386-linux-gnu/libz.so.1')).toBe(false);
    expect(closure.kept.get(`${MA}/libz.so.1`)).toContainEqual({ kind: 'needed', of: '/opt/app/bin/app', soname: 'libz.so.1' });
    // libapp has no RUNPATH of its own: libfoo comes from /usr/local/lib (ld.so.conf), not from the app's RUNPATH.
    expect(kept('/opt/app/lib/libfoo.so.1')).toBe(false);
    expect(closure.kept.get('/usr/local/lib/libfoo.so.1.2.3')).toContainEqual({ kind: 'needed', of: '/opt/app/lib/libapp.so.1', soname: 'libfoo.so.1' });
  });

  it('follows DT_RPATH inherited from the executable', () => {
    expect(closure.kept.get('/opt/legacy/lib/libleghelper.so.1')).toContainEqual({ kind: 'needed', of: '/opt/legacy/lib/libleg.so.1', soname: 'libleghelper.so.1' });
  });

  it('follows "#!/usr/bin/env python3" through PATH, and a hardlinked "#!" interpreter', () => {
    expect(closure.kept.get('/usr/bin/env')).toContainEqual({ kind: 'shebang', of: '/opt/app/bin/manage.py' });
    expect(closure.kept.get('/usr/bin/python3')).toContainEqual({ kind: 'shebang', of: '/opt/app/bin/manage.py' });
    expect(closure.kept.get('/usr/bin/python3.11')).toContainEqual({ kind: 'shebang', of: '/opt/app/bin/manage.py' });
    expect(kinds(closure, '/usr/bin/perl')).toEqual(['shebang']);
    expect(closure.kept.get('/usr/bin/perl5.36.0')).toEqual([{ kind: 'hardlink', of: '/usr/bin/perl' }]);
    expect(closure.kept.get(`${MA}/libperl.so.5.36`)).toContainEqual({ kind: 'needed', of: '/usr/bin/perl5.36.0', soname: 'libperl.so.5.36' });
  });

  it('keeps symlinks of traced configuration and the parents of run-time directories', () => {
    expect(kept('/etc/nginx/sites-enabled/default')).toBe(true);
    expect(kept('/etc/nginx/sites-available/default')).toBe(true);
    expect(closure.kept.get('/var/lib/nginx')).toEqual([{ kind: 'parent', of: '/var/lib/nginx/body' }]);
    expect(closure.missing.get('/var/lib/nginx/body')).toEqual([traced('mkdir')]);
    expect(closure.kept.get('/var/run')).toEqual([{ kind: 'symlink', of: '/var/run/nginx.pid' }]);
    expect(closure.dropped.get('/var/run/nginx.pid')).toEqual({ by: 'mount point /run', reasons: [traced('openat')] });
    expect(explainPath(closure, img.entries, '/var/run').reasons).toEqual([
      '/var/run is a symlink on the way to /var/run/nginx.pid (traced: openat by pid 100; dropped)',
    ]);
  });

  it('keeps mount points as directories, never their gold content', () => {
    expect(closure.create).toEqual(['/proc', '/sys']);
    for (const m of ['/dev', '/run', '/tmp']) expect(kinds(closure, m)).toContain('mountpoint');
    expect(kept('/dev/null')).toBe(false);
    expect(kept('/tmp/junk')).toBe(false);
    expect(closure.dropped.get('/tmp/junk')?.by).toBe('mount point /tmp');
  });

  it('keeps ld.so.cache, nsswitch.conf, the NSS modules and files it names', () => {
    expect(closure.kept.get('/etc/ld.so.cache')).toEqual([{ kind: 'ld-cache', of: LD }]);
    expect(kinds(closure, '/etc/nsswitch.conf')).toEqual(['config']);
    expect(closure.kept.get(`${MA}/libnss_systemd.so.2`)).toContainEqual({ kind: 'nss', module: 'systemd', of: `${MA}/libc.so.6` });
    expect(kept(`${MA}/libnss_mdns4_minimal.so.2`)).toBe(true);
    expect(closure.warnings).toContain('/etc/nsswitch.conf names service myhostname but libnss_myhostname.so.2 is not in the image');
    expect(kept('/etc/hosts')).toBe(true);
    expect(kept('/etc/resolv.conf')).toBe(true);
    expect(kept('/etc/shadow')).toBe(false);
  });

  it('keeps the passwd and group databases for the users, by name or uid', () => {
    const passwd = closure.kept.get('/etc/passwd') ?? [];
    expect(passwd).toContainEqual({ kind: 'user', name: 'www-data' });
    expect(passwd).toContainEqual({ kind: 'user', name: 'root' });
    expect(closure.kept.get('/etc/group')).toContainEqual({ kind: 'user', name: 'www-data' });
    expect(closure.warnings).toContain("user nobody is not in the image's /etc/passwd");
  });

  it('keeps the gconv configuration when the trace used it, not every module', () => {
    expect(kinds(closure, `${MA}/gconv/gconv-modules`)).toEqual(['gconv']);
    expect(kept(`${MA}/gconv/gconv-modules.d/gconv-modules-extra.conf`)).toBe(true);
    expect(kept(`${MA}/gconv/ISO8859-1.so`)).toBe(false);
  });

  it('keeps CA certificates when a TLS library is kept, through their symlinks', () => {
    expect(closure.kept.get('/etc/ssl/certs/ca-certificates.crt')).toContainEqual({ kind: 'tls-ca', of: `${MA}/libssl.so.3` });
    expect(kept('/usr/lib/ssl/certs')).toBe(true);
    expect(kept('/etc/ssl/certs/1a2b3c4d.0')).toBe(true);
    expect(kept('/usr/share/ca-certificates/mozilla/ACME_Root.crt')).toBe(true);
    expect(kept('/usr/lib/ssl/openssl.cnf')).toBe(true);
    expect(kept('/etc/ssl/openssl.cnf')).toBe(true);
  });

  it('keeps /etc/localtime and its zoneinfo target only', () => {
    expect(kinds(closure, '/etc/localtime')).toEqual(['tzdata']);
    expect(kinds(closure, '/usr/share/zoneinfo/Europe/Paris')).toEqual(['tzdata']);
    expect(kept('/usr/share/zoneinfo/Etc/UTC')).toBe(false);
  });

  it('applies package, glob and module-tree rules, with drop globs winning over them', () => {
    expect(closure.kept.get('/etc/nginx/nginx.conf')).toEqual([{ kind: 'package', name: 'nginx-common' }]);
    expect(closure.kept.get('/etc/nginx/mime.types')).toEqual([{ kind: 'glob', pattern: '/etc/nginx/*.types' }]);
    expect(kept('/usr/share/doc/nginx/copyright')).toBe(false);
    expect(closure.dropped.get('/usr/share/doc/nginx/copyright')).toEqual({ by: '/usr/share/doc/**', reasons: [{ kind: 'package', name: 'nginx-common' }] });
    expect(closure.warnings).toContain('keepPackages: package not-installed is not installed in the image');
    const tree = { kind: 'module-tree', pattern: '/lib/python3*/', root: '/usr/lib/python3.11' };
    expect(closure.kept.get('/usr/lib/python3.11/json/__init__.py')).toEqual([tree]);
    expect(kept('/usr/lib/python3.11/__pycache__/os.cpython-311.pyc')).toBe(false);
    expect(closure.dropped.get('/usr/lib/python3.11/__pycache__')?.by).toBe('**/__pycache__/**');
    // An extension module of the tree brings its libraries.
    expect(closure.kept.get(`${MA}/libz.so.1`)).toContainEqual({
      kind: 'needed',
      of: '/usr/lib/python3.11/lib-dynload/zlib.cpython-311-x86_64-linux-gnu.so',
      soname: 'libz.so.1',
    });
  });

  it('never drops what the seeds need, and says so', () => {
    expect(kept(`${MA}/libpcre2-8.so.0.11.2`)).toBe(true);
    expect(closure.warnings.some((w) => w.startsWith('drop glob /lib/x86_64-linux-gnu/libpcre2* matches 2 path(s) the seeds need'))).toBe(true);
  });

  it('keeps paths component by component: only image entries, every parent, every symlink target', () => {
    for (const [p] of closure.kept) {
      expect(img.entries.has(p), p).toBe(true);
      if (p !== '/') expect(closure.kept.has(parentPath(p)), `parent of ${p}`).toBe(true);
      const e = img.entries.get(p)!;
      if (e.type === 'symlink') {
        const t = e.target!.startsWith('/') ? e.target! : joinImagePath(parentPath(p), e.target!);
        expect(closure.kept.has(resolveImagePath(img.entries, t, { followFinal: false })!), `target of ${p}`).toBe(true);
      }
    }
  });

  it('explains kept paths as chains back to a seed', () => {
    const ssl = explainPath(closure, img.entries, `${MA}/libssl.so.3`);
    expect(ssl.kept).toBe(true);
    expect(ssl.reasons[0]).toBe(`${MA}/libssl.so.3 is DT_NEEDED by /usr/sbin/nginx (traced: execve by pid 100)`);

    const helper = explainPath(closure, img.entries, '/opt/legacy/lib/libleghelper.so.1');
    expect(helper.reasons[0]).toBe('/opt/legacy/lib/libleghelper.so.1 is DT_NEEDED by /opt/legacy/lib/libleg.so.1, which is DT_NEEDED by /opt/legacy/bin/tool (entrypoint)');

    const lib64 = explainPath(closure, img.entries, '/lib64');
    expect(lib64.reasons[0]).toBe(
      '/lib64 is a symlink on the way to /lib64/ld-linux-x86-64.so.2, which is the PT_INTERP (dynamic loader, mapped by the kernel at execve) of /usr/sbin/nginx (traced: execve by pid 100)',
    );

    const pcre = explainPath(closure, img.entries, `${MA}/libpcre2-8.so.0.11.2`);
    expect(pcre.reasons[0]).toBe(`${MA}/libpcre2-8.so.0.11.2 is DT_NEEDED as libpcre2-8.so.0 by /usr/sbin/nginx (traced: execve by pid 100)`);
    expect(pcre.reasons.at(-1)).toMatch(/matches drop glob \/lib\/x86_64-linux-gnu\/libpcre2\*, but drop globs never remove what the seeds need/);

    const alias = explainPath(closure, img.entries, '/lib/x86_64-linux-gnu/libc.so.6');
    expect(alias).toMatchObject({ kept: true, entry: `${MA}/libc.so.6` });
    expect(alias.reasons[0]).toBe(`/lib/x86_64-linux-gnu/libc.so.6 is ${MA}/libc.so.6, reached through symlinked directories`);

    const nss = explainPath(closure, img.entries, `${MA}/libnss_systemd.so.2`);
    expect(nss.reasons[0]).toMatch(/is the NSS module of service "systemd" \(named in \/etc\/nsswitch.conf\), loaded by \/usr\/lib\/x86_64-linux-gnu\/libc.so.6, which is DT_NEEDED by \/usr\/sbin\/nginx \(traced: execve/);

    const usr = explainPath(closure, img.entries, '/usr');
    expect(usr.reasons.length).toBe(9); // eight parent reasons, then the count of the others
    expect(usr.reasons[8]).toMatch(/^… and \d+ more reason/);

    const passwd = explainPath(closure, img.entries, '/etc/passwd');
    expect(passwd.reasons).toContain('/etc/passwd holds the passwd/group entries of user www-data, whom the workload runs as');
  });

  it('explains dropped, missing and unneeded paths', () => {
    const doc = explainPath(closure, img.entries, '/usr/share/doc/nginx/copyright', { owners: new Map([['/usr/share/doc/nginx/copyright', ['nginx-common']]]) });
    expect(doc).toMatchObject({ kept: false, dropBy: '/usr/share/doc/**', packages: ['nginx-common'] });
    expect(doc.reasons).toEqual([
      '/usr/share/doc/nginx/copyright is dropped by drop glob /usr/share/doc/**',
      'without the drop rule it would be kept: /usr/share/doc/nginx/copyright belongs to package nginx-common, kept whole by rule',
    ]);
    const junk = explainPath(closure, img.entries, '/tmp/junk');
    expect(junk).toMatchObject({ kept: false, dropBy: 'mount point /tmp' });
    const body = explainPath(closure, img.entries, '/var/lib/nginx/body');
    expect(body.reasons).toEqual(['/var/lib/nginx/body is not in the image, but /var/lib/nginx/body is used by the traced workload (traced: mkdir by pid 100)']);
    const nginxDir = explainPath(closure, img.entries, '/var/lib/nginx');
    expect(nginxDir.reasons).toEqual(['/var/lib/nginx is a directory on the way to /var/lib/nginx/body (traced: mkdir by pid 100; not in the image)']);
    const utc = explainPath(closure, img.entries, '/usr/share/zoneinfo/Etc/UTC');
    expect(utc).toMatchObject({ kept: false, reasons: ['/usr/share/zoneinfo/Etc/UTC is not needed: no seed, dependency, package rule or essential reaches it'] });
    expect(utc.dropBy).toBeUndefined();
    const changelog = explainPath(closure, img.entries, '/usr/share/doc/nginx');
    expect(changelog.dropBy).toBe('/usr/share/doc/**');
  });

  it('is deterministic', async () => {
    const again = await computeClosure(debianInput(debianImage()));
    expect([...again.kept]).toEqual([...closure.kept]);
    expect(again.warnings).toEqual(closure.warnings);
  });
});

describe('computeClosure options and edge cases', () => {
  it('warns about unresolved libraries and interpreters, missing entrypoints and drops nothing without rules', async () => {
    const img = new FakeImage()
      .elfFile('/usr/bin/a', { interp: '/lib/ld-musl-x86_64.so.1', needed: ['libmissing.so.1'] })
      .lib('/usr/lib', 'libother.so.1', '', { class: 32, machine: 'i386' })
      .link('/usr/lib/libmissing.so.1', 'libother.so.1')
      .file('/usr/bin/s', '#!/bin/sh\n', 0o755)
      .file('/usr/bin/e', '#!/usr/bin/env nothere\n', 0o755);
    const c = await computeClosure(
      img.input([
        { path: '/usr/bin/a', reason: { kind: 'entrypoint' } },
        { path: '/usr/bin/s', reason: { kind: 'entrypoint' } },
        { path: '/usr/bin/e', reason: { kind: 'entrypoint' } },
        { path: '/usr/bin/none', reason: { kind: 'entrypoint' } },
      ]),
    );
    expect(c.warnings).toEqual([
      'entrypoint /usr/bin/none is not in the image',
      '/usr/bin/a: PT_INTERP /lib/ld-musl-x86_64.so.1 is not in the image',
      '/usr/bin/a: DT_NEEDED libmissing.so.1 not found in the image\'s library path (only /usr/lib/libmissing.so.1, not ELF 64-bit x86-64)',
      '/usr/bin/s: "#!" interpreter /bin/sh is not in the image',
      '/usr/bin/e: "#!" interpreter /usr/bin/env is not in the image',
    ]);
    expect(c.dropped.size).toBe(0);
    expect(c.create).toEqual(['/proc', '/sys', '/dev', '/run', '/tmp']);
  });

  it('finds musl libraries through /etc/ld-musl-<arch>.path and the musl default /usr/local/lib', async () => {
    const img = new FakeImage()
      .elfFile('/lib/ld-musl-x86_64.so.1', { soname: 'libc.musl-x86_64.so.1' })
      .link('/lib/libc.musl-x86_64.so.1', 'ld-musl-x86_64.so.1')
      .file('/etc/ld-musl-x86_64.path', '/lib:/usr/local/lib\n/opt/musl/lib\n')
      .lib('/opt/musl/lib', 'libx.so.1', '')
      .lib('/usr/local/lib', 'liby.so.1', '')
      .elfFile('/usr/bin/a', { interp: '/lib/ld-musl-x86_64.so.1', needed: ['libx.so.1', 'liby.so.1', 'libc.musl-x86_64.so.1'] });
    const c = await computeClosure(img.input([{ path: '/usr/bin/a', reason: { kind: 'entrypoint' } }]));
    expect(c.warnings).toEqual([]);
    for (const p of ['/lib/ld-musl-x86_64.so.1', '/lib/libc.musl-x86_64.so.1', '/opt/musl/lib/libx.so.1', '/usr/local/lib/liby.so.1']) expect(c.kept.has(p), p).toBe(true);
    expect(c.kept.has('/etc/nsswitch.conf')).toBe(false);
  });

  it('honours gconv "all", tzdata "all" and ld.so.preload', async () => {
    const img = new FakeImage()
      .elfFile(LD, { soname: 'ld-linux-x86-64.so.2' })
      .elfFile(`${MA}/libc.so.6`, { soname: 'libc.so.6', needed: ['ld-linux-x86-64.so.2'] })
      .lib(MA, 'libpre.so.1', '', { needed: ['libc.so.6'] })
      .file(`${MA}/gconv/gconv-modules`, 'x')
      .elfFile(`${MA}/gconv/UTF-7.so`, { needed: ['libc.so.6'] }, 0o644)
      .file('/usr/share/zoneinfo/UTC', 'TZif')
      .file('/etc/ld.so.preload', `${MA}/libpre.so.1\n`)
      .elfFile('/usr/bin/a', { interp: LD, needed: ['libc.so.6'] });
    const c = await computeClosure(img.input([{ path: '/usr/bin/a', reason: { kind: 'entrypoint' } }], { rules: { gconv: 'all', tzdata: 'all' } }));
    expect(c.kept.get(`${MA}/gconv/UTF-7.so`)).toEqual([{ kind: 'gconv', of: `${MA}/libc.so.6` }]);
    expect(c.kept.get('/usr/share/zoneinfo/UTC')).toEqual([{ kind: 'tzdata' }]);
    expect(c.kept.get(`${MA}/libpre.so.1`)).toEqual([{ kind: 'preload', of: '/etc/ld.so.preload' }]);
    expect(explainPath(c, img.entries, `${MA}/libpre.so.1`).reasons[0]).toBe(
      `${MA}/libpre.so.1 is preloaded into every program by /etc/ld.so.preload, which is configuration read by /usr/bin/a (entrypoint)`,
    );
    // No trace touched gconv: "auto" keeps none of it.
    const auto = await computeClosure(img.input([{ path: '/usr/bin/a', reason: { kind: 'entrypoint' } }]));
    expect(auto.kept.has(`${MA}/gconv/gconv-modules`)).toBe(false);
  });

  it('does not drop a link to what the seeds already keep', async () => {
    const img = new FakeImage().file('/usr/share/zoneinfo/Europe/Paris', 'TZif').link('/etc/localtime', '/usr/share/zoneinfo/Europe/Paris');
    const seeds = [{ path: '/usr/share/zoneinfo/Europe/Paris', reason: traced('openat') }];
    const c = await computeClosure(img.input(seeds, { rules: { dropGlobs: ['/usr/share/zoneinfo/**'] } }));
    expect(c.kept.get('/etc/localtime')).toEqual([{ kind: 'tzdata' }]);
    expect(c.kept.get('/usr/share/zoneinfo/Europe/Paris')).toEqual([traced('openat'), { kind: 'tzdata' }]);
    // Without the trace the drop glob removes both the zone file and the link to it.
    const untraced = await computeClosure(img.input([], { rules: { dropGlobs: ['/usr/share/zoneinfo/**'] } }));
    expect(untraced.kept.has('/etc/localtime')).toBe(false);
    expect(untraced.dropped.get('/etc/localtime')).toEqual({ by: '/usr/share/zoneinfo/**', reasons: [{ kind: 'tzdata' }] });
  });

  it('survives symlink loops, dangling links and unreadable blobs', async () => {
    const img = new FakeImage().link('/a', 'b').link('/b', 'a').link('/dangling', '/nowhere/x').file('/usr/bin/s', '#!/bin/sh\n', 0o755);
    const c = await computeClosure({
      ...img.input([
        { path: '/a/x', reason: traced('openat') },
        { path: '/dangling', reason: traced('openat') },
        { path: '/usr/bin/s', reason: { kind: 'entrypoint' } },
      ]),
      readBlob: () => Promise.reject(new Error('EIO')),
    });
    expect(c.missing.has('/a/x')).toBe(true);
    expect(c.kept.has('/a')).toBe(true);
    expect(c.kept.get('/dangling')).toEqual([traced('openat')]);
    expect(c.warnings).toContain('cannot read /usr/bin/s: EIO');
  });

  it('computes the closure of a ~12,000-entry image with long library chains', async () => {
    const img = debianImage();
    const seeds: ClosureInput['seeds'] = [];
    for (let d = 0; d < 60; d++) {
      for (let i = 0; i < 50; i++) {
        const dir = `/usr/lib/x86_64-linux-gnu/pkg${d}`;
        img.lib(dir, `libp${d}_${i}.so.1`, '.0.0', { needed: ['libc.so.6', i > 0 ? `libp${d}_${i - 1}.so.1` : 'libz.so.1'] });
        img.file(`/usr/share/pkg${d}/data${i}.txt`, `${d}/${i}`);
      }
      img.file(`/etc/ld.so.conf.d/pkg${d}.conf`, `/usr/lib/x86_64-linux-gnu/pkg${d}\n`);
      img.elfFile(`/usr/bin/tool${d}`, { interp: '/lib64/ld-linux-x86-64.so.2', needed: [`libp${d}_49.so.1`, 'libc.so.6'] });
      seeds.push({ path: `/usr/bin/tool${d}`, reason: traced('execve', d) });
      for (let i = 0; i < 20; i++) seeds.push({ path: `/usr/share/pkg${d}/data${i}.txt`, reason: traced('openat', d) });
    }
    for (let i = 0; i < 3000; i++) img.file(`/usr/lib/python3.11/site-packages/mod${i % 50}/f${i}.py`, `# ${i}`);
    expect(img.entries.size).toBeGreaterThan(12_000);
    const c = await computeClosure(img.input(seeds, { rules: { keepModuleTrees: ['/usr/lib/python3*/'], dropGlobs: ['**/*.pyc'], keepGlobs: ['/usr/share/pkg1*/**'] } }));
    expect(c.kept.has('/usr/lib/x86_64-linux-gnu/pkg59/libp59_0.so.1.0.0')).toBe(true);
    expect(c.kept.size).toBeGreaterThan(8_000);
  });
});
