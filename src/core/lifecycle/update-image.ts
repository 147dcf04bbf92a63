/**
 * `aim update`: a new version of an image with Debian packages replaced. The contract other
 * stages (rollout, channels) rely on:
 *
 *   updateImage(repo, { image, with, acceptScripts?, reprofile?, tags?, slimTags?, artifacts?, signal? }, reporter)
 *     → UpdateResult { parent, gold, slim?, slims, packages, scripts, scriptRun?, artifacts, actor, at, … }
 *
 * - `image` is a gold image (its slim images are made again, the newest per profile) or a slim
 *   image (its gold is updated and this slim image made again). `with` holds .debs, folders of
 *   them, or Packages indexes whose .debs are at hand.
 * - The new gold is the parent's manifest with the packages' objects replaced and dpkg's database
 *   updated as dpkg would (update-plan.ts), committed like an import. When maintainer scripts or
 *   triggers run during the upgrade, the image's dpkg installs the packages in the profile sandbox
 *   on a copy (update-scripts.ts): if the scripts change files it fails with E_UPDATE_SCRIPTS
 *   (exit 4, the plan as `result`) unless `acceptScripts`, which takes the tree dpkg left.
 * - Each slim image is made again from the new gold with the same profile and rules
 *   (`reprofile`: the profile's workloads are traced again on the new gold first).
 * - Tags: `tags` / `slimTags`, else each numbered tag of the old version moves on to the next
 *   number (gold/nginx:1 → gold/nginx:2), set only once everything succeeded.
 * - Artifacts: `artifacts.outDir` with `artifacts.specs` (what a channel uses) or, by default, the
 *   builds recorded for the previous version are built again of the new one.
 * - Lineage (parent, packages, who, when) is recorded for `aim image history`.
 * Nothing is printed; progress goes to `reporter`. Never throws after tagging.
 */
import { hostname, userInfo } from 'node:os';
import { join } from 'node:path';
import { AimError, ExitCode, throwIfCancelled } from '../../lib/errors.js';
import type { Reporter } from '../../lib/reporter.js';
import type { ElfFacts } from '../analyze/elf.js';
import { buildImage } from '../build/build-image.js';
import type { Artifact, BuildFormat, BuildRequest } from '../build/types.js';
import { commitImage } from '../import/commit.js';
import { storeContent } from '../import/store-content.js';
import { withImportSession } from '../import/write-session.js';
import { parseTag } from '../import/tags.js';
import type { Entry } from '../model/entry.js';
import { runProfile } from '../profile/profile-run.js';
import { resolveImage } from '../query/resolve.js';
import type { Repository } from '../repository/repository.js';
import { slimImage, type SlimReport } from '../slim/compose.js';
import { chooseDebs, readStoredDeb } from './update-input.js';
import { planUpdate, type PackageChange, type StoredDeb, type UpdateScript } from './update-plan.js';
import { runMaintainerScripts, type TreeChange } from './update-scripts.js';

export interface ImageRef {
  /** The first tag, else the short id. */
  ref: string;
  id: string;
}

/** A build of the new version: a format with `aim build`'s options, of its gold or slim image. */
export type ArtifactSpec = Omit<BuildRequest, 'imageId' | 'outDir' | 'signal'> & { of: 'gold' | 'slim' };

export interface UpdateRequest {
  /** Gold or slim image (name:tag or id). */
  image: string;
  /** .deb files, folders of .debs, Packages indexes. */
  with: string[];
  /** Run the maintainer scripts through dpkg and keep what they change. */
  acceptScripts?: boolean;
  /** Trace the profiles' workloads again on the new gold before slimming. */
  reprofile?: boolean;
  /** Tags of the new gold (default: each numbered tag of the parent, next number). */
  tags?: string[];
  /** Tags of the new slim image when one is made (default: next numbers of the old one's). */
  slimTags?: string[];
  /**
   * Artifacts to build of the new version into `outDir` (one subdirectory each). `specs` is what
   * the caller (a channel) uses; without it, the builds recorded for the previous version.
   */
  artifacts?: { outDir: string; specs?: ArtifactSpec[] };
  signal?: AbortSignal;
}

export interface SlimUpdate extends ImageRef {
  parent: ImageRef;
  profile: string;
  reprofiled: boolean;
  files: number;
  bytes: number;
}

export interface UpdateResult {
  parent: ImageRef;
  gold: ImageRef & { created: boolean };
  /** The slim image made again (the one given, or the first of `slims`). */
  slim?: SlimUpdate;
  slims: SlimUpdate[];
  packages: PackageChange[];
  /** Maintainer scripts and triggers the upgrade runs. */
  scripts: UpdateScript[];
  /** When scripts ran in the sandbox: what they changed, and whether that was kept. */
  scriptRun?: { accepted: boolean; changes: TreeChange[]; bookkeeping: number; durationMs: number; outputTail: string };
  artifacts: { of: 'gold' | 'slim'; imageId: string; format: BuildFormat; outDir: string; artifacts: Artifact[] }[];
  skipped: { name: string; arch: string; version: string; installed: string; why: string }[];
  notes: string[];
  actor: string;
  at: string;
}

/** Who makes the update: $AIM_ACTOR, else user@host (the sudo user when run through sudo). */
export function currentActor(env: NodeJS.ProcessEnv = process.env): string {
  if (env.AIM_ACTOR) return env.AIM_ACTOR;
  let user = env.SUDO_USER;
  if (!user) {
    try {
      user = userInfo().username;
    } catch {
      user = String(process.getuid?.() ?? 'unknown');
    }
  }
  return `${user}@${hostname()}`;
}

async function refOf(repo: Repository, id: string): Promise<ImageRef> {
  const tags = await repo.catalog.tagsOf(id);
  return { ref: tags[0] ?? id.slice(0, 12), id };
}

/** Each numbered tag (name:N) of an image, at the next number free for its name. */
async function nextTags(repo: Repository, id: string): Promise<string[]> {
  const out: string[] = [];
  for (const tag of await repo.catalog.tagsOf(id)) {
    const m = /^(.*):(\d+)$/.exec(tag);
    if (!m) continue;
    const numbers = (await repo.catalog.listTags(`${m[1]}:`)).map((t) => /:(\d+)$/.exec(t.name)?.[1]).filter((n): n is string => n !== undefined).map(Number);
    const next = `${m[1]}:${Math.max(...numbers) + 1}`;
    if (!out.includes(next)) out.push(next);
  }
  return out;
}

interface SlimOrigin {
  id: string;
  report: SlimReport;
}

/** The slim images to make again: the one given, or the newest of each profile made from the gold. */
async function slimTargets(repo: Repository, goldId: string, given?: SlimOrigin): Promise<SlimOrigin[]> {
  if (given) return [given];
  const newest = new Map<string, SlimOrigin & { at: string }>();
  for (const img of await repo.catalog.listImages()) {
    if (img.sourceKind !== 'slim') continue;
    const report = (await repo.catalog.getSlimReport(img.id)) as SlimReport | undefined;
    if (report?.gold.id !== goldId) continue;
    const known = newest.get(report.profile);
    if (!known || img.createdAt >= known.at) newest.set(report.profile, { id: img.id, report, at: img.createdAt });
  }
  return [...newest.values()].map(({ id, report }) => ({ id, report }));
}

/** The builds recorded for the previous version (its gold and the slim images made again). */
async function recordedArtifacts(repo: Repository, goldId: string, slims: readonly SlimOrigin[]): Promise<ArtifactSpec[]> {
  const specs = new Map<string, ArtifactSpec>();
  for (const [of, id] of [['gold', goldId], ...slims.map((s) => ['slim', s.id] as const)] as const) {
    for (const b of await repo.catalog.lineage.builds(id)) {
      const spec = { ...b.options, format: b.format, of } as ArtifactSpec;
      specs.set(JSON.stringify([of, b.format, b.options]), spec);
    }
  }
  return [...specs.values()];
}

/** Which blobs of the new entries are ELF objects, with the facts known from the parent; new ones are told by their magic. */
async function elfOf(repo: Repository, entries: readonly Entry[], parentBlobs: ReadonlySet<string>): Promise<{ blobs: Set<string>; facts: Map<string, ElfFacts> }> {
  const blobs = [...new Set(entries.filter((e) => e.type === 'file' && e.blob).map((e) => e.blob!))];
  const facts = (await repo.catalog.elfFacts(blobs)) as Map<string, ElfFacts>;
  const elf = new Set(facts.keys());
  for (const b of blobs) {
    if (parentBlobs.has(b) || elf.has(b)) continue;
    const head = await repo.blobs.readRange(b, 0, 4);
    if (head.length === 4 && head.readUInt32BE(0) === 0x7f454c46) elf.add(b);
  }
  return { blobs: elf, facts };
}

/** Makes the new gold version: plans the update, runs the scripts when any, commits the image; in an import's write session (lock, space guard, rollback of its blobs on failure). */
async function updateGold(
  repo: Repository,
  req: UpdateRequest,
  parent: ImageRef,
  debFiles: string[],
  reporter: Reporter,
): Promise<Pick<UpdateResult, 'packages' | 'scripts' | 'scriptRun' | 'skipped' | 'notes'> & { id: string; created: boolean }> {
  return withImportSession(repo, {}, async () => {
    reporter.emit({ type: 'stage', stage: 'update:read', status: 'start', detail: `${debFiles.length} package(s)` });
    const debs: StoredDeb[] = [];
    for (const f of debFiles) {
      throwIfCancelled(req.signal);
      debs.push(await readStoredDeb(f, (content) => storeContent(repo.blobs, content)));
    }
    reporter.emit({ type: 'stage', stage: 'update:read', status: 'done', detail: debs.map((d) => `${d.package} ${d.version}`).join(', ') });
    const gold = await repo.catalog.entries(parent.id);
    const plan = await planUpdate({ entries: gold, debs, readBlob: (h) => repo.blobs.read(h) });
    if (plan.packages.length === 0) {
      throw new AimError('E_UPDATE_UP_TO_DATE', `${parent.ref} already has ${plan.skipped.map((s) => `${s.name} ${s.installed}`).join(', ')}: nothing to update`, ExitCode.badInput, {
        hint: 'give newer packages than the image has installed',
      });
    }
    for (const [, content] of plan.contents) await repo.blobs.putBuffer(content);
    let entries = plan.entries;
    let scriptRun: UpdateResult['scriptRun'];
    if (plan.scripts.length > 0) {
      const byPackage = new Map(debs.map((d) => [d.package, d.file] as const));
      const applied = plan.packages.map((p) => byPackage.get(p.name)!);
      const { run, entries: accepted } = await runMaintainerScripts(repo, { goldId: parent.id, gold, debs: applied, planned: plan.entries, accept: req.acceptScripts ?? false, signal: req.signal }, reporter);
      scriptRun = { accepted: (req.acceptScripts ?? false) && run.changes.length > 0, changes: run.changes, bookkeeping: run.bookkeeping.length, durationMs: run.durationMs, outputTail: run.outputTail };
      if (run.changes.length > 0 && !req.acceptScripts) {
        const shown = run.changes.slice(0, 5).map((c) => `${c.path} (${c.change}${c.what ? `: ${c.what.join(', ')}` : ''})`);
        throw new AimError('E_UPDATE_SCRIPTS', `the maintainer scripts of ${plan.packages.map((p) => p.name).join(', ')} change files: ${shown.join(', ')}${run.changes.length > 5 ? ` and ${run.changes.length - 5} more` : ''}`, ExitCode.badInput, {
          hint: 'read the scripts (aim update --json lists them with their text); --accept-scripts keeps what dpkg and the scripts leave in the image',
          result: { parent, packages: plan.packages, scripts: plan.scripts, scriptRun },
        });
      }
      if (accepted && run.changes.length > 0) entries = accepted;
    }
    throwIfCancelled(req.signal);
    const parentBlobs = new Set(gold.filter((e) => e.blob).map((e) => e.blob!));
    const elf = await elfOf(repo, entries, parentBlobs);
    const files = entries.filter((e) => e.type === 'file');
    const names = plan.packages.map((p) => `${p.name} ${p.to}`).join(', ');
    const committed = await commitImage(
      repo,
      { entries, elfBlobs: elf.blobs, elfFacts: elf.facts, fileCount: files.length, totalSize: files.reduce((n, e) => n + (e.size ?? 0), 0), skipped: [] },
      { source: `update of ${parent.id.slice(0, 12)} with ${names}`, sourceKind: 'update', tags: [] },
      reporter,
    );
    return { id: committed.id, created: committed.created, packages: plan.packages, scripts: plan.scripts, scriptRun, skipped: plan.skipped, notes: plan.notes };
  });
}

/** Traces the profile's recorded workloads again on the new gold; the profile then belongs to it. */
async function reprofile(repo: Repository, name: string, goldId: string, reporter: Reporter): Promise<void> {
  const profile = await repo.catalog.getProfile(name);
  if (!profile) return;
  const runs = [...new Map(profile.runs.map((r) => [JSON.stringify([r.command, r.probes, r.units]), r] as const)).values()];
  for (const [i, r] of runs.entries()) {
    await runProfile(
      repo,
      { imageId: goldId, name, replace: i === 0, run: r.command, probes: r.probes, readyPort: r.readyPort, readyLog: r.readyLog, readyTimeoutMs: r.readyTimeoutMs, durationMs: r.durationMs, probeTimeoutMs: r.probeTimeoutMs, units: r.units },
      reporter,
    );
  }
}

/** Updates an image with Debian packages (see the contract at the top of this file). */
export async function updateImage(repo: Repository, req: UpdateRequest, reporter: Reporter): Promise<UpdateResult> {
  const actor = currentActor();
  const at = new Date().toISOString();
  const tagsGiven = req.tags?.map(parseTag);
  const slimTagsGiven = req.slimTags?.map(parseTag);
  const given = await resolveImage(repo, req.image);
  const givenReport = (await repo.catalog.getSlimReport(given)) as SlimReport | undefined;
  const goldId = givenReport?.gold.id ?? given;
  if (givenReport && !(await repo.catalog.getImage(goldId))) {
    throw new AimError('E_NOT_FOUND', `the gold image ${goldId.slice(0, 12)} of ${req.image} is gone`, ExitCode.notFound, { hint: 'update a gold image that is in the repository' });
  }
  const parent = await refOf(repo, goldId);
  const targets = await slimTargets(repo, goldId, givenReport ? { id: given, report: givenReport } : undefined);
  const chosen = await chooseDebs(req.with, await repo.catalog.packages(goldId));
  if (chosen.debs.length === 0) {
    throw new AimError('E_UPDATE_UP_TO_DATE', `nothing in ${req.with.join(', ')} is newer than what ${parent.ref} has installed`, ExitCode.badInput, {
      hint: chosen.notes.slice(0, 3).join('; ') || 'give newer packages than the image has installed',
    });
  }
  const gold = await updateGold(repo, req, parent, chosen.debs.map((d) => d.file), reporter);
  const notes = [...chosen.notes, ...gold.notes];
  const detail = { packages: gold.packages.map(({ name, arch, from, to }) => ({ name, arch, from, to })), with: req.with, scripts: gold.scripts.map((s) => `${s.package} ${s.name}`), scriptsAccepted: gold.scriptRun?.accepted ?? false };
  await repo.catalog.lineage.record({ imageId: gold.id, parentId: goldId, kind: 'update', detail, actor, createdAt: at });
  if (!gold.created) notes.push(`the updated gold image ${gold.id.slice(0, 12)} was already in the repository (the same update was made before)`);

  const slims: SlimUpdate[] = [];
  const reprofiled = new Set<string>();
  for (const t of targets) {
    throwIfCancelled(req.signal);
    const profile = t.report.profile;
    if (!(await repo.catalog.getProfile(profile))) {
      notes.push(`slim image ${t.id.slice(0, 12)} not made again: its profile "${profile}" is gone`);
      continue;
    }
    if (req.reprofile && !reprofiled.has(profile)) {
      await reprofile(repo, profile, gold.id, reporter);
      reprofiled.add(profile);
    }
    const made = await slimImage(repo, { goldId: gold.id, profile, tags: [], rules: t.report.rules, entrypoint: t.report.entrypoint }, reporter);
    await repo.catalog.lineage.record({ imageId: made.id, parentId: t.id, kind: 'reslim', goldId: gold.id, profile, detail, actor, createdAt: at });
    slims.push({ ref: made.id.slice(0, 12), id: made.id, parent: await refOf(repo, t.id), profile, reprofiled: reprofiled.has(profile), files: made.report.slim.files, bytes: made.report.slim.bytes });
    if (!t.report.rules && t.report.gold) notes.push(`slim image ${t.id.slice(0, 12)} records no keep/drop rules (made before aim recorded them): made again with its profile alone`);
  }

  // builds of the new version: what the caller asks, else what was built of the previous one
  const artifacts: UpdateResult['artifacts'] = [];
  const specs = req.artifacts?.specs ?? (await recordedArtifacts(repo, goldId, targets));
  if (specs.length > 0 && !req.artifacts) notes.push(`the previous version was built as ${specs.map((s) => `${s.of} ${s.format}`).join(', ')}: give an output directory (--out) to build the new one`);
  for (const spec of req.artifacts ? specs : []) {
    const { of, ...options } = spec;
    const imageId = of === 'gold' ? gold.id : slims[0]?.id;
    if (!imageId) {
      notes.push(`${spec.format} of the slim image not built: no slim image was made`);
      continue;
    }
    const outDir = join(req.artifacts!.outDir, `${of}-${imageId.slice(0, 12)}-${spec.format}`);
    const built = await buildImage(repo, { ...options, imageId, outDir, signal: req.signal }, reporter);
    artifacts.push({ of, imageId, format: spec.format, outDir: built.outDir, artifacts: built.artifacts });
  }

  // tags last: the new versions carry names only once everything succeeded
  const goldTags = tagsGiven ?? (await nextTags(repo, goldId));
  for (const t of goldTags) await repo.catalog.setTag(t, gold.id);
  if (slims[0]) {
    const slimTags = slimTagsGiven ?? (await nextTags(repo, slims[0].parent.id));
    for (const t of slimTags) await repo.catalog.setTag(t, slims[0].id);
  }
  for (const s of slims.slice(1)) for (const t of await nextTags(repo, s.parent.id)) await repo.catalog.setTag(t, s.id);
  for (const s of slims) Object.assign(s, await refOf(repo, s.id));
  return {
    parent,
    gold: { ...(await refOf(repo, gold.id)), created: gold.created },
    ...(slims[0] ? { slim: slims[0] } : {}),
    slims,
    packages: gold.packages,
    scripts: gold.scripts,
    ...(gold.scriptRun ? { scriptRun: gold.scriptRun } : {}),
    artifacts,
    skipped: gold.skipped,
    notes,
    actor,
    at,
  };
}
