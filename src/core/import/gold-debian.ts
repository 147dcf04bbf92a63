import { readFile, stat } from 'node:fs/promises';
import { posix, resolve as resolvePath } from 'node:path';
import { ConfigError, NotFoundError, PermissionError, ToolFailedError } from '../../lib/errors.js';
import { spawnTool } from '../../lib/exec.js';
import { CAP, hasCapability } from '../../lib/privileges.js';
import type { Reporter } from '../../lib/reporter.js';
import type { Repository } from '../repository/repository.js';
import { withImportSession } from './write-session.js';
import { readHostAptSources, sourcesForSuite } from './apt-sources.js';
import { commitImage } from './commit.js';
import type { ImportResult } from './import-image.js';
import { ingestSource } from './ingest.js';
import { parseTag } from './tags.js';
import { readTar } from './tar-reader.js';

export interface GoldDebianRequest {
  suite: string;
  variant: 'minbase' | 'essential' | 'apt' | 'required' | 'important' | 'standard';
  include: string[];
  arch?: string;
  tags: string[];
  /** deb lines to use instead of the machine's apt sources. */
  sourcesFile?: string;
  /** Keep the apt sources in the image (they name the machine's mirror; scrubbed by default). */
  keepAptSources?: boolean;
  /** Host files or directories put into the tree once packages are installed (see {@link CopyIn}). */
  copyIns?: CopyIn[];
  /** Most bytes of new content the build may add to the repository (E_MAX_SIZE beyond). */
  maxBytes?: number;
}

/**
 * A host path copied into the gold tree: a directory's contents land in `dest` (created), a file
 * lands in the directory `dest` under its own name. Owned by root, modes as on the host.
 */
export interface CopyIn {
  /** Absolute host path. */
  src: string;
  /** Absolute directory inside the image. */
  dest: string;
  /** Set by {@link resolveCopyIns}: whether `src` is a directory. */
  dir?: boolean;
}

// mmdebstrap splits special hooks on whitespace and runs plain hooks under sh: keep both plain.
const SAFE_PATH = /^\/[A-Za-z0-9._+@/-]*$/;

/** Parses "SRC:DEST" (SRC relative to cwd) and checks both before anything runs. */
export async function resolveCopyIns(specs: readonly string[], cwd = process.cwd()): Promise<CopyIn[]> {
  const out: CopyIn[] = [];
  for (const spec of specs) {
    const at = spec.lastIndexOf(':');
    if (at <= 0 || at === spec.length - 1) throw new ConfigError(`--copy-in ${spec}: expected SRC:DEST`, { hint: 'e.g. --copy-in ./site:/var/www/html' });
    const src = resolvePath(cwd, spec.slice(0, at));
    const dest = posix.normalize(spec.slice(at + 1)).replace(/(.)\/$/, '$1');
    if (!SAFE_PATH.test(src)) throw new ConfigError(`--copy-in ${spec}: the source path may only hold letters, digits and ._+@/-`);
    if (!SAFE_PATH.test(dest) || dest.split('/').includes('..')) {
      throw new ConfigError(`--copy-in ${spec}: DEST must be an absolute path inside the image (letters, digits and ._+@/-)`);
    }
    const st = await stat(src).catch(() => undefined);
    if (!st) throw new NotFoundError(`--copy-in ${spec}: ${src} does not exist`);
    if (!st.isDirectory() && !st.isFile()) throw new ConfigError(`--copy-in ${spec}: ${src} is neither a file nor a directory`);
    out.push({ src, dest, dir: st.isDirectory() });
  }
  return out;
}

/** The mmdebstrap command line for a request (pure, for --dry-run and tests). */
export function mmdebstrapArgs(req: GoldDebianRequest): string[] {
  const args = [`--variant=${req.variant}`, '--format=tar'];
  if (req.include.length > 0) args.push(`--include=${req.include.join(',')}`);
  if (req.arch) args.push(`--architectures=${req.arch}`);
  for (const c of req.copyIns ?? []) {
    args.push(`--customize-hook=mkdir -p "$1${c.dest}"`);
    args.push(c.dir ? `--customize-hook=sync-in ${c.src} ${c.dest}` : `--customize-hook=copy-in ${c.src} ${c.dest}`);
  }
  if (!req.keepAptSources) {
    // The image must not carry this machine's mirror; apt keeps working once sources are added back.
    args.push('--customize-hook=rm -f "$1/etc/apt/sources.list" "$1"/etc/apt/sources.list.d/*.list "$1"/etc/apt/sources.list.d/*.sources');
  }
  args.push(req.suite, '-', '-');
  return args;
}

const PACKAGE = /^[a-z0-9][a-z0-9+.-]+$/;

/**
 * Builds a gold image with mmdebstrap from real Debian packages and imports it while it is
 * written: mmdebstrap's tar goes straight from its stdout into ingest, no tree of ours on disk.
 */
export async function buildGoldDebian(repo: Repository, req: GoldDebianRequest, reporter: Reporter): Promise<ImportResult> {
  const started = Date.now();
  const tags = req.tags.map(parseTag);
  for (const p of req.include) if (!PACKAGE.test(p)) throw new ConfigError(`invalid package name "${p}"`);
  if (!/^[a-z][a-z0-9-]*$/.test(req.suite)) throw new ConfigError(`invalid suite "${req.suite}"`);
  if (process.getuid?.() !== 0 || !hasCapability(CAP.SYS_ADMIN)) {
    throw new PermissionError('building a gold image needs root: mmdebstrap creates files owned by many users and device nodes', {
      hint: 'run as root (sudo aim image gold …)',
    });
  }
  const sources = req.sourcesFile
    ? (await readFile(req.sourcesFile, 'utf8')).split('\n').filter((l) => l.trim().startsWith('deb'))
    : sourcesForSuite(await readHostAptSources(), req.suite);
  return withImportSession(repo, { maxBytes: req.maxBytes }, async () => {
    reporter.emit({ type: 'stage', stage: 'mmdebstrap', status: 'start', detail: `${req.suite} ${req.variant} +${req.include.join(',')}` });
    const { child } = await spawnTool('mmdebstrap', mmdebstrapArgs(req), { input: sources.join('\n') + '\n', stdout: 'pipe', stderr: 'pipe' });
    const stderr: string[] = [];
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (d: string) => {
      for (const line of d.split('\n').filter(Boolean)) {
        stderr.push(line);
        if (stderr.length > 50) stderr.shift();
        if (line.startsWith('I: ')) reporter.emit({ type: 'info', message: `mmdebstrap: ${line.slice(3)}` });
      }
    });
    const failed = (code: number | undefined, cause?: unknown) =>
      new ToolFailedError(['mmdebstrap', ...mmdebstrapArgs(req)], code, stderr.filter((l) => l.startsWith('E: ')).join('\n') || stderr.join('\n'), { cause });
    const copied = (req.copyIns ?? []).map((c) => ` +${c.dest}`).join('');
    const source = `mmdebstrap ${req.suite} ${req.variant}${req.include.length ? ` +${req.include.join(',')}` : ''}${copied}`;
    let ingested;
    try {
      ingested = await ingestSource(readTar(child.stdout!), { blobs: repo.blobs, reporter, label: source });
    } catch (e) {
      // When mmdebstrap itself failed, its output just stopped: its error is the one to report.
      const exited = await Promise.race([child, new Promise<undefined>((r) => setTimeout(r, 3000, undefined))]);
      if (exited && exited.exitCode !== 0) throw failed(exited.exitCode, e);
      child.kill();
      await child;
      throw e;
    }
    // Only a build that succeeded becomes an image: check before committing anything.
    const done = await child;
    if (done.exitCode !== 0) throw failed(done.exitCode);
    reporter.emit({ type: 'stage', stage: 'mmdebstrap', status: 'done' });
    const committed = await commitImage(repo, ingested, { source, sourceKind: 'gold-debian', tags }, reporter);
    const result = { ...committed, source, sourceKind: 'gold-debian', skipped: ingested.skipped };
    return { ...result, durationMs: Date.now() - started };
  });
}
