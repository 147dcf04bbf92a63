import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { apkChecksumToDigest, parseApkInstalled } from '../../src/core/analyze/apk.js';

const sha1 = (s: string) => createHash('sha1').update(s).digest();
const sha256 = (s: string) => createHash('sha256').update(s).digest();
const q1 = (s: string) => `Q1${sha1(s).toString('base64')}`;

const INSTALLED = `C:Q1AAAAAAAAAAAAAAAAAAAAAAAAAAA=
P:musl
V:1.2.4-r2
A:x86_64
S:383152
I:622592
T:the musl c library (libc) implementation
U:https://musl.libc.org/
L:MIT
o:musl
m:Timo Teräs <timo.teras@iki.fi>
t:1698235423
c:f93af038c3e7c0fc0d7ec6a9a7ad0b9db9bda1d2
p:so:libc.musl-x86_64.so.1=1
F:lib
R:ld-musl-x86_64.so.1
a:0:0:755
Z:${q1('ld')}
R:libc.musl-x86_64.so.1
a:0:0:777
Z:${q1('libc-link')}

P:busybox-binsh
V:1.36.1-r5
A:x86_64
I:1
T:busybox ash /bin/sh
L:GPL-2.0-only
o:busybox
D:busybox=1.36.1-r5
F:bin
R:sh
Z:Q1AAAA

P:ssl_client
V:1.36.1-r5
A:x86_64
L:GPL-2.0-only AND MIT
o:busybox
F:usr/bin
R:ssl_client
Z:Q2${sha256('ssl').toString('base64')}
F:etc/apk/protected_paths.d
M:0:0:755
`;

describe('parseApkInstalled', () => {
  const db = parseApkInstalled(Buffer.from(INSTALLED));

  it('reads packages with their fields', () => {
    expect(db.manager).toBe('apk');
    expect(db.packages.map((p) => p.id)).toEqual(['musl', 'busybox-binsh', 'ssl_client']);
    expect(db.packages[0]).toMatchObject({
      manager: 'apk',
      name: 'musl',
      version: '1.2.4-r2',
      arch: 'x86_64',
      source: 'musl',
      sourceVersion: '1.2.4-r2',
      status: 'installed',
      installedSize: 622592,
      description: 'the musl c library (libc) implementation',
      homepage: 'https://musl.libc.org/',
      license: 'MIT',
      maintainer: 'Timo Teräs <timo.teras@iki.fi>',
    });
    expect(db.packages[1]).toMatchObject({ source: 'busybox', depends: 'busybox=1.36.1-r5' });
  });

  it('owns F: directories and R: files under the last F:', () => {
    expect(db.files.get('musl')).toEqual(['/lib', '/lib/ld-musl-x86_64.so.1', '/lib/libc.musl-x86_64.so.1']);
    expect(db.files.get('busybox-binsh')).toEqual(['/bin', '/bin/sh']);
    expect(db.files.get('ssl_client')).toEqual(['/usr/bin', '/usr/bin/ssl_client', '/etc/apk/protected_paths.d']);
  });

  it('converts Z: checksums to hex digests and drops malformed ones', () => {
    expect(db.packages[0]!.digests).toEqual({
      '/lib/ld-musl-x86_64.so.1': `sha1:${sha1('ld').toString('hex')}`,
      '/lib/libc.musl-x86_64.so.1': `sha1:${sha1('libc-link').toString('hex')}`,
    });
    expect(db.packages[1]!.digests).toBeUndefined();
    expect(db.packages[2]!.digests).toEqual({ '/usr/bin/ssl_client': `sha256:${sha256('ssl').toString('hex')}` });
  });

  it('handles checksum forms', () => {
    expect(apkChecksumToDigest('0123456789ABCDEF0123456789abcdef')).toBe('md5:0123456789abcdef0123456789abcdef');
    expect(apkChecksumToDigest('Q1!!')).toBeUndefined();
    expect(apkChecksumToDigest('')).toBeUndefined();
  });

  it('tolerates garbage, CRLF, blocks without a name and duplicates', () => {
    const text = 'garbage line\r\nF:orphan\r\nR:file\r\n\r\nP:a\r\nV:1\r\nR:at-root\r\nR:bad/name\r\n\r\nP:a\r\nV:2\r\n';
    const d = parseApkInstalled(Buffer.from(text));
    expect(d.packages).toMatchObject([{ name: 'a', version: '1' }]);
    expect(d.files.get('a')).toEqual(['/at-root']);
    expect(d.problems.map((p) => p.code).sort()).toEqual(['W_APK_DUPLICATE', 'W_APK_NO_NAME']);
    expect(parseApkInstalled(Buffer.alloc(0)).packages).toEqual([]);
  });
});
