/** apt Packages indexes: plain and compressed, as targets of an update, and bad input. */
import { execa } from 'execa';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readPackagesIndex } from '../../src/core/debian/packages-index.js';
import { readUpdate } from '../../src/core/lifecycle/update.js';
import { tempDir } from '../helpers/tmp.js';

const INDEX = `Package: libssl3
Source: openssl
Version: 3.0.15-1~deb12u1
Installed-Size: 6165
Maintainer: Debian OpenSSL Team <pkg-openssl-devel@alioth-lists.debian.net>
Architecture: amd64
Multi-Arch: same
Depends: libc6 (>= 2.34)
Description: Secure Sockets Layer toolkit - shared libraries
Description-md5: 88547c6206c7fbc4fcc7d09f1e2f6ee6
Section: libs
Priority: optional
Filename: pool/updates/main/o/openssl/libssl3_3.0.15-1~deb12u1_amd64.deb
Size: 2025692
SHA256: 2f0b7f0ad1d3c5c1a4b6f0d1a1d2c3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0

Package: libssl3
Source: openssl
Version: 3.0.11-1~deb12u2
Architecture: amd64
Filename: pool/updates/main/o/openssl/libssl3_3.0.11-1~deb12u2_amd64.deb

Package: bash
Version: 5.2.15-2+b7
Source: bash (5.2.15-2)
Architecture: amd64
Description: GNU Bourne Again SHell
 Bash is an sh-compatible command language interpreter that executes
 commands read from the standard input or from a file.
 .
 It is ü-tf-8 too.

Package: tzdata
Version: 2024a-0+deb12u1
Architecture: all
`;

let tmp: Awaited<ReturnType<typeof tempDir>>;
beforeAll(async () => {
  tmp = await tempDir('aim-packages-');
});
afterAll(async () => tmp?.cleanup());

async function collect(path: string) {
  const out = [];
  for await (const p of readPackagesIndex(path)) out.push(p);
  return out;
}

describe('apt Packages index', () => {
  it.each(['plain', 'gz', 'xz'] as const)('reads every stanza (%s)', async (kind) => {
    const path = join(tmp.dir, `Packages.${kind}`);
    if (kind === 'plain') await writeFile(path, INDEX);
    else if (kind === 'gz') await writeFile(path, gzipSync(INDEX));
    else await writeFile(path, Buffer.from((await execa('xz', ['-c'], { input: INDEX, encoding: 'buffer' })).stdout as Uint8Array));
    const stanzas = await collect(path);
    expect(stanzas.map((s) => [s.package, s.version, s.arch, s.source, s.sourceVersion, s.line])).toEqual([
      ['libssl3', '3.0.15-1~deb12u1', 'amd64', 'openssl', '3.0.15-1~deb12u1', 1],
      ['libssl3', '3.0.11-1~deb12u2', 'amd64', 'openssl', '3.0.11-1~deb12u2', 17],
      ['bash', '5.2.15-2+b7', 'amd64', 'bash', '5.2.15-2', 23],
      ['tzdata', '2024a-0+deb12u1', 'all', 'tzdata', '2024a-0+deb12u1', 33],
    ]);
    expect(stanzas[0]).toMatchObject({ filename: 'pool/updates/main/o/openssl/libssl3_3.0.15-1~deb12u1_amd64.deb', size: 2025692 });
  });

  it('as an update: the newest version of each package and architecture', async () => {
    const path = join(tmp.dir, 'Packages');
    await writeFile(path, INDEX);
    const u = await readUpdate(path);
    expect(u.kind).toBe('packages-index');
    expect(u.targets.map((t) => [t.by, t.name, t.arch, t.version])).toEqual([
      ['binary', 'libssl3', 'amd64', '3.0.15-1~deb12u1'],
      ['binary', 'bash', 'amd64', '5.2.15-2+b7'],
      ['binary', 'tzdata', 'all', '2024a-0+deb12u1'],
    ]);
  });

  // the title names the case and the code only: the texts run to megabytes
  it.each([
    { name: 'empty', text: '', code: 'E_EMPTY_INPUT' },
    { name: 'blank lines only', text: '\n\n\n', code: 'E_BAD_PACKAGES_INDEX' },
    { name: 'a stanza without Version', text: 'Package: a\nArchitecture: all\n', code: 'E_BAD_PACKAGES_INDEX' },
    { name: 'a bad version', text: 'Package: a\nVersion: 1.0-\n', code: 'E_BAD_VERSION' },
    { name: 'binary data', text: '\0\0\0\x01garbage\0', code: 'E_BAD_PACKAGES_INDEX' },
    { name: 'a stanza of 2 MiB', text: `Package: a\nVersion: 1\nDescription: x\n${' x\n'.repeat(700_000)}`, code: 'E_BAD_PACKAGES_INDEX' },
    { name: 'one 2 MiB line', text: `Package: a\nVersion: 1\nDescription: ${'x'.repeat(2 << 20)}\n`, code: 'E_BAD_PACKAGES_INDEX' },
  ])('$name → $code', async ({ name, text, code }) => {
    const path = join(tmp.dir, `bad-${name.replace(/\W+/g, '-')}`);
    await writeFile(path, text);
    await expect(collect(path)).rejects.toMatchObject({ code });
  });

  it('a truncated compressed index: E_CORRUPT_ARCHIVE', async () => {
    const path = join(tmp.dir, 'Packages-cut.gz');
    const gz = gzipSync(INDEX.repeat(50));
    await writeFile(path, gz.subarray(0, gz.length - 40));
    await expect(collect(path)).rejects.toMatchObject({ code: 'E_CORRUPT_ARCHIVE' });
  });
});
