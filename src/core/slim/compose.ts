import { ConfigError, NotFoundError } from '../../lib/errors.js';
import type { Reporter } from '../../lib/reporter.js';
import type { ElfFacts } from '../analyze/elf.js';
import { computeClosure, explainPath, type Closure, type ClosureRules, type Explanation } from '../closure/index.js';
import { commitImage, type CommittedImage } from '../import/commit.js';
import { indexLater, indexSlimImage } from '../lifecycle/impact-indexer.js';
import { parseTag } from '../import/tags.js';
import { sortEntries } from '../model/manifest.js';
import type { Entry } from '../model/entry.js';
import type { Repository } from '../repository/repository.js';
import type { ProfileRecord } from '../repository/types.js';
import { profileUnits } from '../profile/profile-run.js';
import { packagesOf, tracedFiles, type ReadHead } from '../profile/traced-files.js';
import type { RecordedRuntime } from '../runtime/for-image.js';
import { planImageRuntime } from '../runtime/image-source.js';

export { tracedFiles, type ReadHead } from '../profile/traced-files.js';

export interface SlimRequest {
  goldId: string;
  profile: string;
  tags: string[];
  rules?: ClosureRules;
  /** Paths to explain (kept or dropped, and why). */
  explain?: string[];
  /** What the slim image starts (argv); default: the profile's command through /bin/sh -c. */
  entrypoint?: string[];
}

export interface SlimReport {
  gold: { id: string; files: number; bytes: number; entries: number; packages: number };
  /** `packages`: packages owning at least one file of the image. */
  slim: { files: number; bytes: number; entries: number; packages: number };
  /**
   * The physical limit: the files the trace actually opened or executed that exist as files in
   * the gold image (symlinks and hardlinks followed, each file once), with the interpreters the
   * kernel loaded to execute them (PT_INTERP, "#!"), which no trace shows. No slim image that
   * runs the traced workload can be smaller; the static closure adds what the trace cannot see.
   */
  limit: { files: number; bytes: number };
  /** Packages owning a file the trace touched, sorted. */
  packagesTouched: string[];
  profile: string;
  /** The keep/drop rules it was made with (aim update slims the next version with them). */
  rules?: ClosureRules;
  /** What the booted image starts as its service (argv): the profile's last run command, through /bin/sh -c. */
  entrypoint?: string[];
  /** Files and bytes the slim image leaves out, per owning package (largest first). */
  removedByPackage: { package: string; files: number; bytes: number }[];
  /** The largest files left out. */
  removedLargest: { path: string; bytes: number }[];
  /** Paths the workload asked for that the gold image does not have. */
  missing: string[];
  /**
   * Runtime state the slim image creates before its workload starts (aim's init at boot, the
   * sandbox in aim verify): the lines of the kept tmpfiles.d files and the units' directories.
   */
  runtime?: RecordedRuntime;
  warnings: string[];
}

export interface SlimResult extends CommittedImage {
  report: SlimReport;
  explanations: Explanation[];
}

/** The command a profile's workload ran as, as argv: what a booted slim image should start. */
function entrypointOf(profile: ProfileRecord): string[] | undefined {
  const last = profile.runs.at(-1);
  return last ? ['/bin/sh', '-c', last.command] : undefined;
}

/** The syscall that says most about why a path matters: entering a directory, then creating, opening, looking. */
const TELLING = ['chroot', 'chdir', 'bind', 'mkdir', 'mkdirat', 'openat', 'open', 'openat2', 'connect'];
function tellingSyscall(syscalls: readonly string[]): string {
  return TELLING.find((s) => syscalls.includes(s)) ?? syscalls[0] ?? 'open';
}

const MOUNT_MODES: Record<string, number> = { '/proc': 0o555, '/sys': 0o555, '/dev': 0o755, '/run': 0o755, '/tmp': 0o1777 };

/** Pure: the slim entry list from the gold entries and a closure (plan, no writes). */
export function slimEntries(gold: Entry[], closure: Closure): Entry[] {
  const kept = gold.filter((e) => closure.kept.has(e.path));
  for (const p of closure.create) kept.push({ path: p, type: 'dir', mode: MOUNT_MODES[p] ?? 0o755, uid: 0, gid: 0, mtime: 0 });
  return sortEntries(kept);
}

function summarizeRemoved(gold: Entry[], keptPaths: Set<string>, owners: Map<string, string[]>): Pick<SlimReport, 'removedByPackage' | 'removedLargest'> {
  const byPackage = new Map<string, { files: number; bytes: number }>();
  const removed: { path: string; bytes: number }[] = [];
  for (const e of gold) {
    if (e.type !== 'file' || keptPaths.has(e.path)) continue;
    removed.push({ path: e.path, bytes: e.size ?? 0 });
    for (const pkg of owners.get(e.path) ?? ['(no package)']) {
      const s = byPackage.get(pkg) ?? { files: 0, bytes: 0 };
      s.files++;
      s.bytes += e.size ?? 0;
      byPackage.set(pkg, s);
    }
  }
  return {
    removedByPackage: [...byPackage].map(([pkg, s]) => ({ package: pkg, ...s })).sort((a, b) => b.bytes - a.bytes),
    removedLargest: removed.sort((a, b) => b.bytes - a.bytes).slice(0, 20),
  };
}

/** Whether `image` was made from `ancestor` by aim update, through any number of updates. */
async function updatedFrom(repo: Repository, image: string, ancestor: string): Promise<boolean> {
  const seen = new Set<string>();
  for (let at = await repo.catalog.lineage.get(image); at && !seen.has(at.imageId); at = await repo.catalog.lineage.get(at.parentId)) {
    seen.add(at.imageId);
    if (at.kind === 'update' && at.parentId === ancestor) return true;
  }
  return false;
}

/**
 * Composes a slim image: the profile's traced paths are the seeds of the static closure (ELF
 * interpreter and libraries, shebangs, symlink chains, NSS, CA certificates, time zone…); the
 * new manifest holds exactly the kept entries of the gold image, plus the run-time mount points.
 */
export async function slimImage(repo: Repository, req: SlimRequest, reporter: Reporter): Promise<SlimResult> {
  const tags = req.tags.map(parseTag);
  const profile = await repo.catalog.getProfile(req.profile);
  if (!profile) throw new NotFoundError(`no profile "${req.profile}"`, { hint: 'record one with: aim profile run' });
  if (profile.imageId !== req.goldId && !(await updatedFrom(repo, req.goldId, profile.imageId))) {
    throw new ConfigError(`profile "${req.profile}" was recorded on image ${profile.imageId.slice(0, 12)}, not ${req.goldId.slice(0, 12)} (nor an image aim update made from it)`);
  }
  reporter.emit({ type: 'stage', stage: 'closure', status: 'start' });
  const [gold, owners] = await Promise.all([repo.catalog.entries(req.goldId), repo.catalog.owners(req.goldId)]);
  const byPath = new Map(gold.map((e) => [e.path, e] as const));
  const elf = (await repo.catalog.elfFacts([...new Set(gold.filter((e) => e.blob).map((e) => e.blob!))])) as Map<string, ElfFacts>;
  const seeds = profile.paths
    .filter((p) => p.ok)
    .map((p) => ({ path: p.path, reason: { kind: 'traced' as const, syscall: p.exec ? 'execve' : tellingSyscall(p.syscalls), pid: p.firstPid } }));
  const last = profile.runs.at(-1);
  const goldRuntime = await planImageRuntime({ entries: byPath, readBlob: (b) => repo.blobs.read(b) }, { units: profileUnits(profile), command: last?.command });
  const closure = await computeClosure({
    entries: byPath,
    elf: (blob) => elf.get(blob),
    readBlob: (blob) => repo.blobs.read(blob),
    owners,
    seeds,
    rules: req.rules,
    runtime: { actions: goldRuntime.actions, used: profile.paths.map((p) => p.path), uids: profile.uids, gids: profile.gids },
    reporter,
  });
  const entries = slimEntries(gold, closure);
  reporter.emit({ type: 'stage', stage: 'closure', status: 'done', detail: `${entries.length} of ${gold.length} entries kept` });

  const files = entries.filter((e) => e.type === 'file');
  const goldFiles = gold.filter((e) => e.type === 'file');
  const readHead: ReadHead = async (e, bytes) => {
    if (e.blob === undefined || (e.mode & 0o111) === 0) return undefined;
    return repo.blobs.readRange(e.blob, 0, bytes);
  };
  const limit = await tracedFiles(profile, byPath, owners, (blob) => elf.get(blob), readHead);
  const elfBlobs = new Set(files.filter((e) => elf.has(e.blob!)).map((e) => e.blob!));
  const report: SlimReport = {
    gold: {
      id: req.goldId,
      files: goldFiles.length,
      bytes: goldFiles.reduce((n, e) => n + (e.size ?? 0), 0),
      entries: gold.length,
      packages: packagesOf(goldFiles.map((e) => e.path), owners).size,
    },
    slim: {
      files: files.length,
      bytes: files.reduce((n, e) => n + (e.size ?? 0), 0),
      entries: entries.length,
      packages: packagesOf(files.map((e) => e.path), owners).size,
    },
    limit: { files: limit.files, bytes: limit.bytes },
    packagesTouched: limit.packages,
    profile: req.profile,
    ...(req.rules ? { rules: req.rules } : {}),
    entrypoint: req.entrypoint ?? entrypointOf(profile),
    ...summarizeRemoved(gold, new Set(closure.kept.keys()), owners),
    missing: [...closure.missing.keys()],
    ...(closure.runtime ? { runtime: closure.runtime } : {}),
    warnings: closure.warnings,
  };
  const lock = await repo.lockForWrite();
  let committed: CommittedImage;
  try {
    committed = await commitImage(
      repo,
      { entries, elfBlobs, elfFacts: new Map([...elfBlobs].map((b) => [b, elf.get(b)!])), fileCount: files.length, totalSize: report.slim.bytes, skipped: [] },
      { source: `slim of ${req.goldId.slice(0, 12)} by profile ${req.profile}`, sourceKind: 'slim', tags },
      reporter,
    );
    await repo.catalog.putSlimReport(committed.id, report);
    const slimId = committed.id;
    await indexLater(reporter, `slim image ${slimId.slice(0, 12)}`, () => indexSlimImage(repo.catalog, slimId, req.goldId, req.profile, new Map(entries.map((e) => [e.path, e] as const)), owners));
  } finally {
    await lock.release();
  }
  const explanations = (req.explain ?? []).map((p) => explainPath(closure, byPath, p, { owners }));
  return { ...committed, report, explanations };
}
