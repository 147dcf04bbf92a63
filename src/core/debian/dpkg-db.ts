import { decodePath } from '../../lib/path-codec.js';

/**
 * The text of dpkg's database files as dpkg writes them when it installs a package: the package's
 * paragraph of /var/lib/dpkg/status, info/<pkg>.list and info/<pkg>.md5sums. Pure functions over
 * strings, so `aim update` can replace a package in an image without running dpkg, and tests can
 * hold them against what dpkg itself writes.
 */

/** The order dpkg writes the fields it knows (lib/dpkg/parse.c); others follow in their own order. */
const DPKG_FIELD_ORDER = [
  'Package', 'Essential', 'Protected', 'Status', 'Priority', 'Section', 'Installed-Size', 'Origin', 'Maintainer', 'Bugs',
  'Architecture', 'Multi-Arch', 'Source', 'Version', 'Config-Version', 'Replaces', 'Provides', 'Depends', 'Pre-Depends',
  'Recommends', 'Suggests', 'Breaks', 'Conflicts', 'Enhances', 'Conffiles', 'Filename', 'Size', 'MD5sum', 'MSDOS-Filename',
  'Description', 'Triggers-Pending', 'Triggers-Awaited',
];
const RANK = new Map(DPKG_FIELD_ORDER.map((f, i) => [f.toLowerCase(), i] as const));

/** Fields a .deb's control file may carry that dpkg does not keep in the status file. */
const NOT_IN_STATUS = new Set(['status', 'conffiles', 'config-version', 'triggers-pending', 'triggers-awaited', 'filename', 'size', 'md5sum', 'msdos-filename']);

interface RawField {
  name: string;
  /** The field's lines as written, the first with its name. */
  lines: string[];
}

/** The fields of one deb822 paragraph, with their lines as written. */
function rawFields(paragraph: string): RawField[] {
  const out: RawField[] = [];
  for (const line of paragraph.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith(' ') || line.startsWith('\t')) {
      out.at(-1)?.lines.push(line);
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    out.push({ name: line.slice(0, colon).trim(), lines: [line] });
  }
  return out;
}

export interface StatusConffile {
  path: string;
  md5: string;
  obsolete?: boolean;
}

/**
 * The status paragraph dpkg writes for a package it just installed from `control` (the .deb's
 * control file): its fields in dpkg's order, `Status: install ok installed` and the Conffiles
 * field (the md5 of each conffile as the package ships it; conffiles the new version dropped
 * stay, marked obsolete, as dpkg keeps them). Ends without a newline.
 */
export function installedParagraph(control: string, conffiles: readonly StatusConffile[], want = 'install'): string {
  const fields = rawFields(control).filter((f) => !NOT_IN_STATUS.has(f.name.toLowerCase()));
  fields.push({ name: 'Status', lines: [`Status: ${want} ok installed`] });
  if (conffiles.length > 0) {
    fields.push({ name: 'Conffiles', lines: ['Conffiles:', ...conffiles.map((c) => ` ${c.path} ${c.md5}${c.obsolete ? ' obsolete' : ''}`)] });
  }
  const known = fields.filter((f) => RANK.has(f.name.toLowerCase())).sort((a, b) => RANK.get(a.name.toLowerCase())! - RANK.get(b.name.toLowerCase())!);
  const other = fields.filter((f) => !RANK.has(f.name.toLowerCase()));
  return [...known, ...other].flatMap((f) => f.lines).join('\n');
}

/** A field's one-line value in a raw paragraph. */
export function paragraphField(paragraph: string, name: string): string | undefined {
  const f = rawFields(paragraph).find((x) => x.name.toLowerCase() === name.toLowerCase());
  return f ? f.lines[0]!.slice(f.lines[0]!.indexOf(':') + 1).trim() : undefined;
}

/** Where the paragraph of a package (and architecture, when given) is in the status text: [start, end) of its lines. */
export function findParagraph(status: string, name: string, arch?: string): { start: number; end: number; text: string } | undefined {
  let start = 0;
  while (start < status.length) {
    while (status[start] === '\n') start++;
    if (start >= status.length) break;
    let end = status.indexOf('\n\n', start);
    if (end === -1) end = status.length;
    const text = status.slice(start, end);
    if (paragraphField(text, 'Package') === name) {
      const a = paragraphField(text, 'Architecture');
      if (arch === undefined || a === arch || a === 'all' || arch === 'all') return { start, end, text };
    }
    start = end;
  }
  return undefined;
}

/** The status text with the package's paragraph replaced (or appended when it had none). */
export function replaceParagraph(status: string, name: string, arch: string | undefined, paragraph: string): string {
  const at = findParagraph(status, name, arch);
  if (at) return status.slice(0, at.start) + paragraph + status.slice(at.end);
  const body = status.replace(/\n*$/, '');
  return `${body === '' ? '' : `${body}\n\n`}${paragraph}\n\n`;
}

/** The status paragraph's conffiles: path, md5 and flags. */
export function statusConffiles(paragraph: string): StatusConffile[] {
  const f = rawFields(paragraph).find((x) => x.name.toLowerCase() === 'conffiles');
  if (!f) return [];
  const out: StatusConffile[] = [];
  for (const line of f.lines.slice(1)) {
    const t = line.trim().split(/\s+/);
    const flags = new Set<string>();
    while (t.length > 2 && /^(obsolete|remove-on-upgrade)$/.test(t.at(-1)!)) flags.add(t.pop()!);
    if (t.length < 2 || !t[0]!.startsWith('/')) continue;
    const md5 = t.pop()!;
    out.push({ path: t.join(' '), md5, ...(flags.has('obsolete') ? { obsolete: true } : {}) });
  }
  return out;
}

const NL = Buffer.from('\n');

/** info/<pkg>.list: "/." for the root, then every path of data.tar in archive order, as dpkg writes it (paths as bytes). */
export function listText(paths: readonly string[]): Buffer {
  return Buffer.concat(['/.', ...paths.filter((p) => p !== '/')].flatMap((p) => [decodePath(p), NL]));
}

/** info/<pkg>.md5sums as dpkg writes it for a package that ships none: "<md5>  <path without the leading />". */
export function md5sumsText(files: readonly { path: string; md5: string }[]): Buffer {
  return Buffer.concat(files.flatMap((f) => [Buffer.from(`${f.md5}  `), decodePath(f.path.slice(1)), NL]));
}

/** dpkg's name for a package's info files: "name:arch" for Multi-Arch: same, else the name. */
export function infoName(name: string, arch: string, multiArch: string | undefined): string {
  return multiArch === 'same' ? `${name}:${arch}` : name;
}
