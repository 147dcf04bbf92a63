import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  dep5ExpressionToSpdx,
  exceptionNameToSpdx,
  licenseFactFromApk,
  licenseFactFromCopyright,
  licenseNameToSpdx,
  parseDebianCopyright,
  spdxLikeExpressionToSpdx,
} from '../../src/core/analyze/copyright.js';

describe('licenseNameToSpdx', () => {
  it.each([
    ['GPL-1+', 'GPL-1.0-or-later'],
    ['GPL-2', 'GPL-2.0-only'],
    ['GPL-2+', 'GPL-2.0-or-later'],
    ['GPL-2.0+', 'GPL-2.0-or-later'],
    ['GPL-3', 'GPL-3.0-only'],
    ['GPL-3+', 'GPL-3.0-or-later'],
    ['LGPL-2', 'LGPL-2.0-only'],
    ['LGPL-2+', 'LGPL-2.0-or-later'],
    ['LGPL-2.1', 'LGPL-2.1-only'],
    ['LGPL-2.1+', 'LGPL-2.1-or-later'],
    ['LGPL-3+', 'LGPL-3.0-or-later'],
    ['AGPL-3+', 'AGPL-3.0-or-later'],
    ['GFDL-1.3+', 'GFDL-1.3-or-later'],
    ['GFDL-NIV-1.3', 'GFDL-1.3-no-invariants-only'],
    ['GPL-2.0-or-later', 'GPL-2.0-or-later'],
    ['BSD-2-clause', 'BSD-2-Clause'],
    ['BSD-3-clause', 'BSD-3-Clause'],
    ['bsd-3-clause', 'BSD-3-Clause'],
    ['BSD-4-clause-UC', 'BSD-4-Clause-UC'],
    ['Expat', 'MIT'],
    ['MIT', 'MIT'],
    ['Apache-2.0', 'Apache-2.0'],
    ['Apache-2', 'Apache-2.0'],
    ['MPL-2.0', 'MPL-2.0'],
    ['MPL-1.1+', 'MPL-1.1+'],
    ['Zlib', 'Zlib'],
    ['ISC', 'ISC'],
    ['public-domain', 'LicenseRef-public-domain'],
    ['Public-Domain', 'LicenseRef-public-domain'],
    ['Artistic', 'Artistic-1.0-Perl'],
    ['Artistic-2.0', 'Artistic-2.0'],
    ['CC0-1.0', 'CC0-1.0'],
    ['CC0', 'CC0-1.0'],
    ['BSL-1.0', 'BSL-1.0'],
    ['OpenLDAP-2.8', 'OLDAP-2.8'],
    ['curl', 'curl'],
    ['FSFULLR', 'FSFULLR'],
    // Not guessed: kept, sanitised.
    ['GPL', 'LicenseRef-GPL'],
    ['GPL-4+', 'LicenseRef-GPL-4-or-later'],
    ['MIT/X11', 'LicenseRef-MIT-X11'],
    ['permissive', 'LicenseRef-permissive'],
    ['BSD-3-google', 'LicenseRef-BSD-3-google'],
  ])('%s → %s', (name, spdx) => {
    expect(licenseNameToSpdx(name)).toBe(spdx);
  });

  it('maps exceptions, depending on the GPL version where SPDX does', () => {
    expect(exceptionNameToSpdx('Autoconf', 'GPL-2.0-or-later')).toBe('Autoconf-exception-2.0');
    expect(exceptionNameToSpdx('Autoconf', 'GPL-3.0-or-later')).toBe('Autoconf-exception-3.0');
    expect(exceptionNameToSpdx('GCC-Runtime-3.1', 'GPL-3.0-or-later')).toBe('GCC-exception-3.1');
    expect(exceptionNameToSpdx('Linux-syscall-note', 'GPL-2.0-only')).toBe('Linux-syscall-note');
    expect(exceptionNameToSpdx('OpenSSL', 'GPL-2.0-or-later')).toBe('AdditionRef-OpenSSL');
  });
});

describe('dep5ExpressionToSpdx', () => {
  it.each([
    ['GPL-3+', 'GPL-3.0-or-later'],
    ['GPL-1+ or Artistic', 'GPL-1.0-or-later OR Artistic-1.0-Perl'],
    ['GPL-3+ and BSD-4-clause-UC', 'GPL-3.0-or-later AND BSD-4-Clause-UC'],
    ['LGPL-3+ or GPL-2+', 'LGPL-3.0-or-later OR GPL-2.0-or-later'],
    ['GPL-2+ with Autoconf exception', 'GPL-2.0-or-later WITH Autoconf-exception-2.0'],
    ['GPL-3+ with Bison exception', 'GPL-3.0-or-later WITH Bison-exception-2.2'],
    ['GPL-2 with Linux-syscall-note exception', 'GPL-2.0-only WITH Linux-syscall-note'],
    ['GPL-2+ with OpenSSL exception', 'GPL-2.0-or-later WITH AdditionRef-OpenSSL'],
    ['GPL-2+ or Artistic-2.0, and BSD-3-clause', '(GPL-2.0-or-later OR Artistic-2.0) AND BSD-3-Clause'],
    ['A or B and C', 'LicenseRef-A OR LicenseRef-B AND LicenseRef-C'],
    ['Expat or GPL-2+ with Font exception', 'MIT OR GPL-2.0-or-later WITH Font-exception-2.0'],
    ['GPL-2+ OR MIT', 'GPL-2.0-or-later OR MIT'],
    ['same as Perl itself', 'LicenseRef-same-as-Perl-itself'],
    ['or MIT', 'MIT'],
    ['MIT and', 'MIT'],
  ])('%s → %s', (text, expr) => {
    expect(dep5ExpressionToSpdx(text)?.expression).toBe(expr);
  });

  it('gives nothing for an empty value', () => {
    expect(dep5ExpressionToSpdx('  ')).toBeUndefined();
    expect(dep5ExpressionToSpdx('and or')).toBeUndefined();
  });

  it('normalises loose SPDX-style fields (apk L:)', () => {
    expect(spdxLikeExpressionToSpdx('GPL-2.0-or-later AND (MIT OR BSD-3-Clause)')?.expression).toBe('GPL-2.0-or-later AND (MIT OR BSD-3-Clause)');
    expect(spdxLikeExpressionToSpdx('GPL2+ and BSD-2-Clause')?.expression).toBe('GPL-2.0-or-later AND BSD-2-Clause');
    expect(spdxLikeExpressionToSpdx('GPL-2.0-only WITH Linux-syscall-note')?.expression).toBe('GPL-2.0-only WITH Linux-syscall-note');
  });
});

const MACHINE_READABLE = `Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: demo
Source: https://example.org/demo

# a comment line is ignored
Files: *
Copyright: 2001-2020 Someone
License: GPL-3+

Files: lib/fts.c
  lib/other.c
Copyright: 1990 The Regents
License: GPL-3+ and BSD-4-clause-UC

Files:
 m4/*
 build-aux/*
Copyright: FSF
License: GPL-2+ with Autoconf exception
 This file is free software; you can redistribute it
 .
 with the exception text continuing here.

Files: debian/*
Copyright: 2020 Debian people
License: Expat or GPL-1+

License: GPL-3+
 On Debian systems, see /usr/share/common-licenses/GPL-3.

License: BSD-4-clause-UC
 Redistribution and use ...

License: Expat
 Permission is hereby granted ...
`;

describe('parseDebianCopyright', () => {
  it('reads Files stanzas and stand-alone License paragraphs', () => {
    const c = parseDebianCopyright(MACHINE_READABLE);
    expect(c.machineReadable).toBe(true);
    expect(c.format).toBe('https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/');
    expect(c.stanzas).toEqual([
      { files: ['*'], license: 'GPL-3+', expression: 'GPL-3.0-or-later' },
      { files: ['lib/fts.c', 'lib/other.c'], license: 'GPL-3+ and BSD-4-clause-UC', expression: 'GPL-3.0-or-later AND BSD-4-Clause-UC' },
      { files: ['m4/*', 'build-aux/*'], license: 'GPL-2+ with Autoconf exception', expression: 'GPL-2.0-or-later WITH Autoconf-exception-2.0' },
      { files: ['debian/*'], license: 'Expat or GPL-1+', expression: 'MIT OR GPL-1.0-or-later' },
    ]);
    expect(c.standalone).toEqual(['GPL-3+', 'BSD-4-clause-UC', 'Expat']);
    expect(c.spdx).toEqual(['BSD-4-Clause-UC', 'GPL-1.0-or-later', 'GPL-2.0-or-later', 'GPL-3.0-or-later', 'MIT']);
    expect(c.exceptions).toEqual(['Autoconf-exception-2.0']);
    expect(c.declared).toEqual(['GPL-3+', 'BSD-4-clause-UC', 'GPL-2+ with Autoconf exception', 'Expat', 'GPL-1+']);
    expect(c.expression).toBe(
      'GPL-3.0-or-later AND BSD-4-Clause-UC AND GPL-2.0-or-later WITH Autoconf-exception-2.0 AND (MIT OR GPL-1.0-or-later)',
    );
  });

  it('keeps a single OR expression unparenthesised and a comma grouping intact', () => {
    const one = parseDebianCopyright('Format: x\n\nFiles: *\nCopyright: c\nLicense: GPL-1+ or Artistic\n');
    expect(one.expression).toBe('GPL-1.0-or-later OR Artistic-1.0-Perl');
    const two = parseDebianCopyright('Format: x\n\nFiles: *\nCopyright: c\nLicense: MIT or Zlib, and ISC\n\nFiles: a\nCopyright: c\nLicense: ISC\n');
    expect(two.expression).toBe('(MIT OR Zlib) AND ISC');
  });

  it('falls back to the header License when there are no Files stanzas', () => {
    const c = parseDebianCopyright('Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\nLicense: Apache-2.0\n');
    expect(c).toMatchObject({ machineReadable: true, spdx: ['Apache-2.0'], expression: 'Apache-2.0', headerLicense: 'Apache-2.0' });
  });

  it('does not guess from prose', () => {
    const prose = `This is the Debian prepackaged version of something.

It was downloaded from: https://example.org/
Format: this line is prose, not a header

License: GPL version 2 or later, see /usr/share/common-licenses/GPL-2.
`;
    expect(parseDebianCopyright(prose)).toMatchObject({ machineReadable: false, spdx: [], declared: [], stanzas: [] });
    expect(parseDebianCopyright('')).toMatchObject({ machineReadable: false });
    expect(licenseFactFromCopyright('p', prose)).toEqual({ package: 'p', spdx: [], declared: [], machineReadable: false, origin: 'debian-copyright' });
  });

  it('reports a missing file as such', () => {
    expect(licenseFactFromCopyright('p', undefined)).toEqual({ package: 'p', spdx: [], declared: [], machineReadable: false, origin: 'missing' });
  });

  it('builds apk license facts from L:', () => {
    expect(licenseFactFromApk('musl', 'MIT')).toEqual({
      package: 'musl',
      spdx: ['MIT'],
      declared: ['MIT'],
      machineReadable: true,
      origin: 'apk-license',
      expression: 'MIT',
    });
    expect(licenseFactFromApk('x', undefined)).toMatchObject({ machineReadable: false, origin: 'missing' });
  });
});

describe.skipIf(!existsSync('/usr/share/doc/coreutils/copyright'))("this machine's copyright files", () => {
  it('coreutils is machine readable and GPL-3.0-or-later', () => {
    const c = parseDebianCopyright(readFileSync('/usr/share/doc/coreutils/copyright', 'utf8'));
    expect(c.machineReadable).toBe(true);
    expect(c.stanzas[0]).toEqual({ files: ['*'], license: 'GPL-3+', expression: 'GPL-3.0-or-later' });
    expect(c.spdx).toContain('GPL-3.0-or-later');
  });

  it('parses every copyright file without throwing; machine readable iff it starts with Format:', () => {
    let total = 0;
    for (const dir of readdirSync('/usr/share/doc')) {
      let text: string;
      try {
        text = readFileSync(`/usr/share/doc/${dir}/copyright`, 'utf8');
      } catch {
        continue;
      }
      total++;
      const c = parseDebianCopyright(text);
      expect({ dir, mr: c.machineReadable }).toEqual({ dir, mr: /^Format:/.test(text) });
      for (const id of c.spdx) expect(id).toMatch(/^[A-Za-z0-9][A-Za-z0-9.-]*\+?$/);
      if (c.machineReadable && c.stanzas.length > 0) expect(c.expression).toBeDefined();
    }
    expect(total).toBeGreaterThan(10);
  });
});
