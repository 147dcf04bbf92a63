import { encodePath } from '../../lib/path-codec.js';
import type { PackageDatabase, PackageFact } from './package.js';

/**
 * Reader for Alpine's installed database (/lib/apk/db/installed): one block of "X:value" lines per
 * package, blocks separated by blank lines. "F:" names a directory (relative to the root), "R:" a
 * file in the last "F:" directory, "Z:" the checksum of the last "R:" file. Unknown keys are
 * ignored and malformed lines skipped, never fatal.
 */

/** apk's checksum text ("Q1<base64 sha1>", "Q2<base64 sha256>", or plain hex md5) to "alg:hex". */
export function apkChecksumToDigest(text: string): string | undefined {
  if (text.startsWith('Q1') || text.startsWith('Q2')) {
    const bytes = Buffer.from(text.slice(2), 'base64');
    const want = text[1] === '1' ? 20 : 32;
    if (bytes.length !== want) return undefined;
    return `${want === 20 ? 'sha1' : 'sha256'}:${bytes.toString('hex')}`;
  }
  if (/^[0-9a-fA-F]{32}$/.test(text)) return `md5:${text.toLowerCase()}`;
  if (/^[0-9a-fA-F]{40}$/.test(text)) return `sha1:${text.toLowerCase()}`;
  return undefined;
}

interface Block {
  pkg: Partial<PackageFact> & { digests: Record<string, string> };
  paths: string[];
}

/** Parses the content of /lib/apk/db/installed. */
export function parseApkInstalled(content: Buffer): PackageDatabase {
  const db: PackageDatabase = { manager: 'apk', packages: [], files: new Map(), diversions: [], problems: [] };
  let block: Block | undefined;
  let dir = '';
  let lastFile: string | undefined;

  const finish = () => {
    if (!block) return;
    const p = block.pkg;
    if (p.name) {
      const pkg: PackageFact = {
        manager: 'apk',
        id: p.name,
        name: p.name,
        version: p.version ?? '',
        arch: p.arch ?? '',
        source: p.source ?? p.name,
        // apk records no origin version; subpackages are built from the origin at the same version.
        sourceVersion: p.version ?? '',
        status: 'installed',
      };
      for (const key of ['installedSize', 'description', 'homepage', 'license', 'maintainer', 'depends'] as const) {
        if (p[key] !== undefined) (pkg as unknown as Record<string, unknown>)[key] = p[key];
      }
      if (Object.keys(p.digests).length > 0) pkg.digests = p.digests;
      if (db.files.has(pkg.id)) {
        db.problems.push({ code: 'W_APK_DUPLICATE', message: `apk package ${pkg.id} is listed twice; keeping the first` });
      } else {
        db.packages.push(pkg);
        db.files.set(pkg.id, block.paths);
      }
    } else if (block.paths.length > 0) {
      db.problems.push({ code: 'W_APK_NO_NAME', message: 'apk database block without P: (package name) skipped' });
    }
    block = undefined;
  };

  let start = 0;
  while (start <= content.length) {
    let nl = content.indexOf(0x0a, start);
    if (nl === -1) nl = content.length;
    let line = content.subarray(start, nl);
    start = nl + 1;
    if (line.length > 0 && line[line.length - 1] === 0x0d) line = line.subarray(0, line.length - 1);
    if (line.length === 0) {
      finish();
      continue;
    }
    if (line.length < 2 || line[1] !== 0x3a) continue;
    if (!block) {
      block = { pkg: { digests: {} }, paths: [] };
      dir = '';
      lastFile = undefined;
    }
    const key = String.fromCharCode(line[0]!);
    const raw = line.subarray(2);
    const value = raw.toString('utf8');
    const p = block.pkg;
    switch (key) {
      case 'P':
        p.name = value;
        break;
      case 'V':
        p.version = value;
        break;
      case 'A':
        p.arch = value;
        break;
      case 'o':
        p.source = value;
        break;
      case 'L':
        p.license = value;
        break;
      case 'T':
        p.description = value;
        break;
      case 'U':
        p.homepage = value;
        break;
      case 'm':
        p.maintainer = value;
        break;
      case 'D':
        p.depends = value;
        break;
      case 'I':
        if (/^\d+$/.test(value)) p.installedSize = Number(value);
        break;
      case 'F': {
        const d = encodePath(raw).replace(/^\/+|\/+$/g, '');
        dir = d;
        lastFile = undefined;
        block.paths.push(d === '' ? '/' : `/${d}`);
        break;
      }
      case 'R': {
        if (raw.length === 0 || raw.includes(0x2f)) break;
        lastFile = dir === '' ? `/${encodePath(raw)}` : `/${dir}/${encodePath(raw)}`;
        block.paths.push(lastFile);
        break;
      }
      case 'Z': {
        if (lastFile === undefined) break;
        const digest = apkChecksumToDigest(value);
        if (digest) p.digests[lastFile] = digest;
        break;
      }
      default:
        break;
    }
  }
  finish();
  return db;
}
