import { readFile } from 'node:fs/promises';
import { ConfigError, PermissionError, ToolFailedError } from '../../lib/errors.js';
import { spawnTool } from '../../lib/exec.js';
import { CAP, hasCapability } from '../../lib/privileges.js';
import type { Reporter } from '../../lib/reporter.js';
import type { Repository } from '../repository/repository.js';
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
}

/** The mmdebstrap command line for a request (pure, for --dry-run and tests). */
export function mmdebstrapArgs(req: GoldDebianRequest): string[] {
  const args = [`--variant=${req.variant}`, '--format=tar'];
  if (req.include.length > 0) args.push(`--include=${req.include.join(',')}`);
  if (req.arch) args.push(`--architectures=${req.arch}`);
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
  const lock = await repo.lockForWrite();
  try {
    reporter.emit({ type: 'stage', stage: 'mmdebstrap', status: 'start', detail: `${req.suite} ${req.variant} +${req.include.join(',')}` });
    const child = spawnTool('mmdebstrap', mmdebstrapArgs(req), { input: sources.join('\n') + '\n', stdout: 'pipe', stderr: 'pipe' });
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
    const source = `mmdebstrap ${req.suite} ${req.variant}${req.include.length ? ` +${req.include.join(',')}` : ''}`;
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
  } catch (e) {
    await repo.rollbackBlobs(lock);
    throw e;
  } finally {
    await lock.release();
  }
}
