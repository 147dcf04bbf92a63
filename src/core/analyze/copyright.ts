import { fieldValue, foldedValue, getField, parseDeb822 } from './deb822.js';

/**
 * Debian machine-readable copyright files (DEP-5, copyright-format 1.0) to SPDX.
 *
 * Only files whose first paragraph has a Format header are read; anything else is reported as not
 * machine readable with no licenses: aim does not guess from prose. License short names are mapped
 * to SPDX ids through a table of the common DEP-5 names ("GPL-2+" → "GPL-2.0-or-later",
 * "Expat" → "MIT"); names outside it are kept as "LicenseRef-<name>" so nothing is lost.
 */

/** Licenses of one package. */
export interface LicenseFact {
  package: string;
  /** SPDX license ids and LicenseRef-s (no exceptions), unique and sorted. */
  spdx: string[];
  /** SPDX exception ids (or AdditionRef-s) used with WITH, unique and sorted. */
  exceptions?: string[];
  /** All Files stanzas' licenses ANDed, as an SPDX expression. */
  expression?: string;
  /** License terms as written in the file ("GPL-2+", "GPL-2+ with Autoconf exception"), unique. */
  declared: string[];
  machineReadable: boolean;
  /** Where the facts came from. */
  origin: 'debian-copyright' | 'apk-license' | 'missing';
  /** Image path of the copyright file read (after following symlinks). */
  copyrightPath?: string;
  /** Per Files stanza: its patterns and license. */
  files?: CopyrightFilesStanza[];
}

export interface CopyrightFilesStanza {
  files: string[];
  /** The License field's first line as written. */
  license: string;
  /** The same as an SPDX expression. */
  expression: string;
}

export interface ParsedCopyright {
  machineReadable: boolean;
  /** The header's Format value. */
  format?: string;
  stanzas: CopyrightFilesStanza[];
  /** The header paragraph's License, if any (a summary of the whole package). */
  headerLicense?: string;
  /** Short names that have a stand-alone License paragraph (the license text). */
  standalone: string[];
  /** Results over all stanzas (or the header when there are no Files stanzas). */
  spdx: string[];
  exceptions: string[];
  expression?: string;
  declared: string[];
}

const SPDX_IDS = [
  '0BSD', 'AFL-2.1', 'AFL-3.0', 'AGPL-1.0-only', 'AGPL-1.0-or-later', 'AGPL-3.0-only', 'AGPL-3.0-or-later',
  'Apache-1.0', 'Apache-1.1', 'Apache-2.0', 'APSL-2.0', 'Artistic-1.0', 'Artistic-1.0-Perl', 'Artistic-2.0',
  'Beerware', 'blessing', 'BSD-1-Clause', 'BSD-2-Clause', 'BSD-2-Clause-Patent', 'BSD-3-Clause',
  'BSD-3-Clause-Clear', 'BSD-4-Clause', 'BSD-4-Clause-UC', 'BSL-1.0', 'bzip2-1.0.6', 'CC-BY-3.0', 'CC-BY-4.0',
  'CC-BY-SA-3.0', 'CC-BY-SA-4.0', 'CC0-1.0', 'CDDL-1.0', 'CDDL-1.1', 'CPL-1.0', 'curl', 'ECL-2.0', 'EPL-1.0',
  'EPL-2.0', 'EUPL-1.1', 'EUPL-1.2', 'FSFAP', 'FSFUL', 'FSFULLR', 'FSFULLRWD', 'FTL', 'GD', 'GFDL-1.1-only',
  'GFDL-1.1-or-later', 'GFDL-1.2-only', 'GFDL-1.2-or-later', 'GFDL-1.3-only', 'GFDL-1.3-or-later',
  'GPL-1.0-only', 'GPL-1.0-or-later', 'GPL-2.0-only', 'GPL-2.0-or-later', 'GPL-3.0-only', 'GPL-3.0-or-later',
  'HPND', 'HPND-sell-variant', 'ICU', 'IJG', 'Info-ZIP', 'IPA', 'ISC', 'JSON', 'LGPL-2.0-only', 'LGPL-2.0-or-later',
  'LGPL-2.1-only', 'LGPL-2.1-or-later', 'LGPL-3.0-only', 'LGPL-3.0-or-later', 'Libpng', 'libpng-2.0', 'libtiff',
  'LPPL-1.3c', 'MIT', 'MIT-0', 'MIT-CMU', 'MPL-1.0', 'MPL-1.1', 'MPL-2.0', 'MPL-2.0-no-copyleft-exception',
  'MS-PL', 'NCSA', 'NTP', 'OFL-1.1', 'OLDAP-2.8', 'OpenSSL', 'PHP-3.01', 'PostgreSQL', 'PSF-2.0', 'Python-2.0',
  'Qhull', 'Ruby', 'SGI-B-2.0', 'Sleepycat', 'SSPL-1.0', 'TCL', 'Unicode-3.0', 'Unicode-DFS-2015',
  'Unicode-DFS-2016', 'Unlicense', 'UPL-1.0', 'Vim', 'W3C', 'WTFPL', 'X11', 'Zlib', 'ZPL-2.0', 'ZPL-2.1',
];

/** DEP-5 (and common Debian) names that differ from their SPDX id. Keys are lower case. */
const ALIASES: Record<string, string> = {
  expat: 'MIT',
  'apache-2': 'Apache-2.0',
  artistic: 'Artistic-1.0-Perl',
  'artistic-1': 'Artistic-1.0',
  'artistic-2': 'Artistic-2.0',
  cc0: 'CC0-1.0',
  'public-domain': 'LicenseRef-public-domain',
  'openldap-2.8': 'OLDAP-2.8',
  'psf-2': 'PSF-2.0',
  'zope-2.1': 'ZPL-2.1',
  'zope-2.0': 'ZPL-2.0',
  'mpl-2': 'MPL-2.0',
  'epl-1': 'EPL-1.0',
  'epl-2': 'EPL-2.0',
  'cddl-1': 'CDDL-1.0',
  'sil-ofl-1.1': 'OFL-1.1',
  'ofl-1.1': 'OFL-1.1',
  'lppl-1.3c': 'LPPL-1.3c',
  'bsl-1': 'BSL-1.0',
  'boost-1.0': 'BSL-1.0',
  libpng: 'Libpng',
};

const SPDX_BY_LOWER = new Map<string, string>([
  ...SPDX_IDS.map((id): [string, string] => [id.toLowerCase(), id]),
  ...Object.entries(ALIASES),
]);

/** GNU licenses: "+" means "-or-later", a plain version "-only". */
const GNU = /^(a?gpl|lgpl|gfdl-niv|gfdl)-?v?(\d+(?:\.\d+)?)(\+)?$/i;

function gnuVersion(family: string, version: string): string | undefined {
  const v = version.includes('.') ? version : `${version}.0`;
  const ok: Record<string, string[]> = {
    gpl: ['1.0', '2.0', '3.0'],
    lgpl: ['2.0', '2.1', '3.0'],
    agpl: ['1.0', '3.0'],
    gfdl: ['1.1', '1.2', '1.3'],
  };
  const list = ok[family];
  return list?.includes(v) ? v : undefined;
}

function sanitiseRef(s: string): string {
  const t = s.replace(/\+$/, '-or-later').replace(/[^A-Za-z0-9.-]+/g, '-').replace(/-{2,}/g, '-').replace(/^-|-$/g, '');
  return t === '' ? 'unknown' : t;
}

/** One license short name to an SPDX license id, or "LicenseRef-<name>" when it is not known. */
export function licenseNameToSpdx(name: string): string {
  const n = name.trim();
  const lower = n.toLowerCase();
  const direct = SPDX_BY_LOWER.get(lower);
  if (direct) return direct;
  const g = GNU.exec(n);
  if (g) {
    const fam = g[1]!.toLowerCase();
    const niv = fam === 'gfdl-niv';
    const v = gnuVersion(niv ? 'gfdl' : fam, g[2]!);
    if (v) {
      const base = `${fam === 'agpl' ? 'AGPL' : fam === 'lgpl' ? 'LGPL' : fam === 'gpl' ? 'GPL' : 'GFDL'}-${v}`;
      const suffix = g[3] ? 'or-later' : 'only';
      return niv ? `${base}-no-invariants-${suffix}` : `${base}-${suffix}`;
    }
  }
  // A "+" on a known non-GNU license is SPDX's own "+" operator ("MPL-1.1+").
  if (n.endsWith('+')) {
    const inner = SPDX_BY_LOWER.get(lower.slice(0, -1));
    if (inner && !inner.startsWith('LicenseRef-')) return `${inner}+`;
  }
  return `LicenseRef-${sanitiseRef(n)}`;
}

const EXCEPTIONS: Record<string, string | ((license: string) => string)> = {
  autoconf: (l) => (l.startsWith('GPL-3') ? 'Autoconf-exception-3.0' : 'Autoconf-exception-2.0'),
  'autoconf-2.0': 'Autoconf-exception-2.0',
  'autoconf-3.0': 'Autoconf-exception-3.0',
  bison: 'Bison-exception-2.2',
  'bison-2.2': 'Bison-exception-2.2',
  classpath: 'Classpath-exception-2.0',
  'classpath-2.0': 'Classpath-exception-2.0',
  font: 'Font-exception-2.0',
  gcc: (l) => (l.startsWith('GPL-3') ? 'GCC-exception-3.1' : 'GCC-exception-2.0'),
  'gcc-runtime': (l) => (l.startsWith('GPL-3') ? 'GCC-exception-3.1' : 'GCC-exception-2.0'),
  'gcc-runtime-3.1': 'GCC-exception-3.1',
  'gcc-3.1': 'GCC-exception-3.1',
  libtool: 'Libtool-exception',
  'linux-syscall-note': 'Linux-syscall-note',
  llvm: 'LLVM-exception',
  'ocaml-lgpl-linking': 'OCaml-LGPL-linking-exception',
  'u-boot': 'u-boot-exception-2.0',
  wxwindows: 'WxWindows-exception-3.1',
  'qt-gpl': 'Qt-GPL-exception-1.0',
  'qt-lgpl': 'Qt-LGPL-exception-1.1',
};

/** An exception name ("Autoconf", "GCC-Runtime-3.1") to its SPDX id, or "AdditionRef-<name>". */
export function exceptionNameToSpdx(name: string, license: string): string {
  const key = name.trim().toLowerCase().replace(/\s+/g, '-').replace(/-exception$/, '');
  const hit = EXCEPTIONS[key];
  if (typeof hit === 'function') return hit(license);
  if (hit) return hit;
  return `AdditionRef-${sanitiseRef(name)}`;
}

interface Term {
  raw: string;
  license: string;
  exception?: string;
}

interface ConvertedExpression {
  expression: string;
  terms: Term[];
}

function termFromTokens(tokens: string[]): Term | undefined {
  if (tokens.length === 0) return undefined;
  const raw = tokens.join(' ');
  const withAt = tokens.findIndex((t) => t.toLowerCase() === 'with');
  if (withAt > 0 && withAt < tokens.length - 1) {
    const licenseName = tokens.slice(0, withAt).join(' ');
    let exTokens = tokens.slice(withAt + 1);
    if (exTokens.length > 1 && exTokens[exTokens.length - 1]!.toLowerCase() === 'exception') exTokens = exTokens.slice(0, -1);
    const license = licenseNameToSpdx(licenseName);
    return { raw, license, exception: exceptionNameToSpdx(exTokens.join('-'), license) };
  }
  return { raw, license: licenseNameToSpdx(raw) };
}

function renderTerm(t: Term): string {
  return t.exception ? `${t.license} WITH ${t.exception}` : t.license;
}

function wrap(e: string): string {
  return /\s(AND|OR)\s/.test(e) ? `(${e})` : e;
}

/**
 * A DEP-5 License expression ("GPL-2+ or Artistic, and BSD-3-clause", "GPL-2+ with Autoconf
 * exception") to SPDX. "and" binds tighter than "or" in both; a comma groups everything before it.
 */
export function dep5ExpressionToSpdx(text: string): ConvertedExpression | undefined {
  const segments = text.split(',');
  const terms: Term[] = [];
  let acc: string | undefined;
  for (let si = 0; si < segments.length; si++) {
    const tokens = segments[si]!.trim().split(/\s+/).filter((t) => t !== '');
    let joiner: 'AND' | 'OR' = 'AND';
    if (si > 0 && tokens.length > 0 && /^(and|or)$/i.test(tokens[0]!)) joiner = tokens.shift()!.toUpperCase() as 'AND' | 'OR';
    const parts: string[] = [];
    let run: string[] = [];
    const flush = () => {
      const t = termFromTokens(run);
      run = [];
      if (!t) return false;
      terms.push(t);
      parts.push(renderTerm(t));
      return true;
    };
    for (const tok of tokens) {
      const op = tok.toLowerCase();
      if (op === 'and' || op === 'or') {
        // A dangling operator (nothing before it) is dropped rather than producing "OR X".
        if (flush()) parts.push(op.toUpperCase());
      } else run.push(tok);
    }
    if (!flush() && parts.length > 0) parts.pop();
    if (parts.length === 0) continue;
    const seg = parts.join(' ');
    acc = acc === undefined ? seg : `${wrap(acc)} ${joiner} ${wrap(seg)}`;
  }
  return acc === undefined ? undefined : { expression: acc, terms };
}

/**
 * An SPDX-style expression as package managers record it (apk "L:", sometimes loose:
 * "GPL-2.0-or-later AND MIT", "GPL2+ and BSD", "custom") normalised through the same table.
 */
export function spdxLikeExpressionToSpdx(text: string): ConvertedExpression | undefined {
  const tokens = text.replace(/([()])/g, ' $1 ').split(/\s+/).filter((t) => t !== '');
  const out: string[] = [];
  const terms: Term[] = [];
  let run: string[] = [];
  const flush = () => {
    if (run.length === 0) return;
    const t = termFromTokens(run);
    run = [];
    if (!t) return;
    terms.push(t);
    out.push(renderTerm(t));
  };
  for (const tok of tokens) {
    const op = tok.toLowerCase();
    if (op === 'and' || op === 'or' || tok === '(' || tok === ')') {
      flush();
      out.push(tok === '(' || tok === ')' ? tok : op.toUpperCase());
    } else run.push(tok);
  }
  flush();
  if (terms.length === 0) return undefined;
  return { expression: out.join(' ').replace(/\( /g, '(').replace(/ \)/g, ')'), terms };
}

/** "A AND (B OR C)" → ["A", "(B OR C)"]; an expression with a top-level OR is one conjunct. */
function topLevelConjuncts(e: string): string[] {
  const tokens = e.replace(/([()])/g, ' $1 ').split(/\s+/).filter((t) => t !== '');
  const parts: string[][] = [[]];
  let depth = 0;
  for (const t of tokens) {
    if (t === '(') depth++;
    else if (t === ')') depth--;
    if (depth === 0 && t === 'OR') return [wrap(e)];
    if (depth === 0 && t === 'AND') parts.push([]);
    else parts[parts.length - 1]!.push(t);
  }
  return parts.filter((p) => p.length > 0).map((p) => p.join(' ').replace(/\( /g, '(').replace(/ \)/g, ')'));
}

function unwrap(e: string): string {
  if (!e.startsWith('(') || !e.endsWith(')')) return e;
  let depth = 0;
  for (let i = 0; i < e.length; i++) {
    if (e[i] === '(') depth++;
    else if (e[i] === ')') depth--;
    if (depth === 0 && i < e.length - 1) return e;
  }
  return e.slice(1, -1);
}

function summarise(converted: ConvertedExpression[]): Pick<ParsedCopyright, 'spdx' | 'exceptions' | 'expression' | 'declared'> {
  const spdx = new Set<string>();
  const exceptions = new Set<string>();
  const declared = new Set<string>();
  const expressions: string[] = [];
  for (const c of converted) {
    for (const t of c.terms) {
      spdx.add(t.license);
      if (t.exception) exceptions.add(t.exception);
      declared.add(t.raw);
    }
    if (!expressions.includes(c.expression)) expressions.push(c.expression);
  }
  // AND of all stanzas, flattened so a license shared by several stanzas appears once.
  const conjuncts: string[] = [];
  for (const e of expressions) for (const c of topLevelConjuncts(e)) if (!conjuncts.includes(c)) conjuncts.push(c);
  const expression = conjuncts.length === 0 ? undefined : conjuncts.length === 1 ? unwrap(conjuncts[0]!) : conjuncts.join(' AND ');
  const result: Pick<ParsedCopyright, 'spdx' | 'exceptions' | 'expression' | 'declared'> = {
    spdx: [...spdx].sort(),
    exceptions: [...exceptions].sort(),
    declared: [...declared],
  };
  if (expression !== undefined) result.expression = expression;
  return result;
}

/** Parses a debian/copyright file. Never throws; prose files come back as not machine readable. */
export function parseDebianCopyright(text: string): ParsedCopyright {
  const empty: ParsedCopyright = { machineReadable: false, stanzas: [], standalone: [], spdx: [], exceptions: [], declared: [] };
  const paragraphs = parseDeb822(text.replace(/^\uFEFF/, ''));
  const header = paragraphs[0];
  if (!header) return empty;
  // The header must be a real deb822 paragraph from the first line on; prose whose first
  // paragraph happens to contain "Something:" lines further down does not qualify.
  const firstLine = text.replace(/^\uFEFF/, '').split('\n').find((l) => l.trim() !== '' && !l.startsWith('#')) ?? '';
  const format = fieldValue(header, 'Format') ?? fieldValue(header, 'Format-Specification');
  if (format === undefined || !/^[A-Za-z][A-Za-z0-9-]*\s*:/.test(firstLine)) return empty;

  const stanzas: CopyrightFilesStanza[] = [];
  const converted: ConvertedExpression[] = [];
  const standalone: string[] = [];
  for (const p of paragraphs.slice(1)) {
    const lic = getField(p, 'License');
    if (!lic) continue;
    const files = foldedValue(p, 'Files');
    if (files === undefined) {
      if (lic.first !== '') standalone.push(lic.first);
      continue;
    }
    if (lic.first === '') continue;
    const c = dep5ExpressionToSpdx(lic.first);
    if (!c) continue;
    converted.push(c);
    stanzas.push({ files: files.split(/\s+/), license: lic.first, expression: c.expression });
  }
  const headerLicense = fieldValue(header, 'License');
  if (converted.length === 0 && headerLicense !== undefined) {
    const c = dep5ExpressionToSpdx(headerLicense);
    if (c) converted.push(c);
  }
  const result: ParsedCopyright = { machineReadable: true, format, stanzas, standalone, ...summarise(converted) };
  if (headerLicense !== undefined) result.headerLicense = headerLicense;
  return result;
}

/** LicenseFact for a dpkg package from its copyright file text (undefined text: file missing). */
export function licenseFactFromCopyright(pkg: string, text: string | undefined, copyrightPath?: string): LicenseFact {
  if (text === undefined) return { package: pkg, spdx: [], declared: [], machineReadable: false, origin: 'missing' };
  const parsed = parseDebianCopyright(text);
  const fact: LicenseFact = {
    package: pkg,
    spdx: parsed.spdx,
    declared: parsed.declared,
    machineReadable: parsed.machineReadable,
    origin: 'debian-copyright',
  };
  if (parsed.exceptions.length > 0) fact.exceptions = parsed.exceptions;
  if (parsed.expression !== undefined) fact.expression = parsed.expression;
  if (copyrightPath !== undefined) fact.copyrightPath = copyrightPath;
  if (parsed.stanzas.length > 0) fact.files = parsed.stanzas;
  return fact;
}

/** LicenseFact for an apk package from its "L:" field. */
export function licenseFactFromApk(pkg: string, license: string | undefined): LicenseFact {
  const c = license === undefined ? undefined : spdxLikeExpressionToSpdx(license);
  if (!c) return { package: pkg, spdx: [], declared: [], machineReadable: false, origin: license === undefined ? 'missing' : 'apk-license' };
  const s = summarise([c]);
  const fact: LicenseFact = { package: pkg, spdx: s.spdx, declared: s.declared, machineReadable: true, origin: 'apk-license' };
  if (s.exceptions.length > 0) fact.exceptions = s.exceptions;
  if (s.expression !== undefined) fact.expression = s.expression;
  return fact;
}
