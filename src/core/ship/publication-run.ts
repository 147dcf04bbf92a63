import { readdir, rm, rmdir } from 'node:fs/promises';
import { AimError, BusyError, ExitCode, InterruptedError } from '../../lib/errors.js';
import { debugLog } from '../../lib/log.js';
import type { Reporter } from '../../lib/reporter.js';
import type { KernelChoice } from '../bootable/kernel-choice.js';
import type { Artifact } from '../build/types.js';
import { emptyOrAbsent, removePartialOutput } from '../export/export-image.js';
import type { JournalResource, LeaseOwner, PublicationRecord } from '../model/publication.js';
import { effectiveState, newLeaseOwner, type Claim, type NewPublication, type PublicationStore } from '../repository/catalog-publications.js';
import type { Repository } from '../repository/repository.js';
import { inShipBuildDir, isShipBuildDir, shipBuildDir } from '../repository/ship-builds.js';
import { earlierResources, openJournal } from './journal.js';
import type { AnyProvider, ApplyContext, Journal, ProviderPlan, Published, ShipImage, ShipTarget } from './provider.js';
import { journalledBuilder, providerContext, providerFailure, providerStep, removeBuild } from './ship-context.js';

const debug = debugLog('ship');

/** How long a provider may take to stop after Ctrl-C before aim gives up on it (a well-behaved one stops at once). */
const STOP_GRACE_MS = 15_000;
const POLL_MS = 200;

/** A publication as results and `aim ship list` show it. */
export interface PublicationView {
  id: string;
  key: string;
  provider: string;
  imageId: string;
  imageRef: string;
  target: string;
  state: string;
  outDir?: string;
  resources: JournalResource[];
  published: unknown[];
  error?: { code: string; message: string };
  createdAt: string;
  updatedAt: string;
}

export async function viewOf(store: PublicationStore, p: PublicationRecord): Promise<PublicationView> {
  return {
    id: p.id,
    key: p.key,
    provider: p.provider,
    imageId: p.imageId,
    imageRef: p.imageRef,
    target: p.target,
    state: effectiveState(p),
    ...(p.outDir ? { outDir: p.outDir } : {}),
    resources: await store.resources(p.id),
    published: p.published,
    ...(p.error ? { error: p.error } : {}),
    createdAt: p.createdAt,
    updatedAt: p.updatedAt,
  };
}

/** Everything a run needs, options already validated. */
export interface PublicationInput {
  provider: AnyProvider;
  source: string;
  image: ShipImage;
  /** Options in the schema's input form, without secrets (journalled) and validated (given to the provider). */
  journalOptions: Record<string, unknown>;
  options: Record<string, unknown>;
  where: string;
  key: string;
  /** The user's output directory; without it the builds go to aim's scratch space (ship-builds/<publication>) and are removed once published. */
  outDir?: string | undefined;
  env: NodeJS.ProcessEnv;
  signal: AbortSignal;
  /** A plan computed before the lease (first ship): used when nothing changed meanwhile. */
  plan?: ProviderPlan;
}

export interface PublicationOutcome {
  publication: PublicationView;
  plan: ProviderPlan;
  /** The journal said published and observe found it in place: nothing was done. */
  alreadyPublished: boolean;
  /** An earlier run of this publication had been interrupted (or had failed) and this one continued it. */
  resumed: boolean;
  /** This run waited for another run of the same ship to finish first. */
  waited: boolean;
  artifacts: Artifact[];
  /** The builds were in aim's scratch space and are removed now that the publication is published (`artifacts` names files that are gone). */
  buildsRemoved: boolean;
  published: Published[];
  kernel?: KernelChoice;
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal.reason instanceof Error ? signal.reason : new InterruptedError());
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });

/**
 * Takes the lease on the ship's publication, waiting while another live run holds it: two runs
 * of the same ship are serialised, and the second then finds the first one's result.
 */
async function acquire(store: PublicationStore, fresh: NewPublication, owner: LeaseOwner, signal: AbortSignal, reporter: Reporter): Promise<{ claim: Exclude<Claim, { busy: PublicationRecord }>; waited: boolean }> {
  let waited = false;
  for (;;) {
    signal.throwIfAborted();
    const claim = await store.claim(fresh, owner);
    if (!claim.busy) return { claim, waited };
    if (!waited) {
      const holder = claim.busy.owner!;
      debug('waiting: publication %s of key %s is held by pid %d on %s', claim.busy.id, fresh.key, holder.pid, holder.host);
      reporter.emit({ type: 'info', message: `waiting for the run (pid ${holder.pid}) that is publishing the same ship as ${claim.busy.id}` });
    }
    waited = true;
    await sleep(POLL_MS, signal);
  }
}

/**
 * Waits for apply to settle. On Ctrl-C a provider stops at once (it got the signal); one that does
 * not is given up on after a grace period, so aim still exits and the journal says interrupted.
 */
function settle<T>(work: Promise<T>, signal: AbortSignal, provider: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    const onAbort = () => {
      timer = setTimeout(() => reject(new InterruptedError(`interrupted: provider ${provider} did not stop within ${STOP_GRACE_MS / 1000} s`)), STOP_GRACE_MS);
      timer.unref();
    };
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => {
      signal.removeEventListener('abort', onAbort);
      if (timer) clearTimeout(timer);
    });
  });
}

/**
 * Removes every resource a publication holds that is not removed yet, newest first: builds by
 * aim, the rest through the provider's remove. What cannot be removed stays in the journal (as it
 * was) and is returned; the rest is marked removed.
 */
export async function removeResources(
  store: PublicationStore,
  publication: PublicationRecord,
  provider: AnyProvider | undefined,
  options: Record<string, unknown>,
  context: { reporter: Reporter; signal: AbortSignal; env: NodeJS.ProcessEnv; source: string },
): Promise<{ removed: JournalResource[]; left: { resource: JournalResource; error: AimError }[] }> {
  const journal = openJournal(store, publication.id, await store.resources(publication.id));
  const removed: JournalResource[] = [];
  const left: { resource: JournalResource; error: AimError }[] = [];
  const ctx = { ...providerContext(context.reporter, context.signal, context.env), options, publication: publication.id };
  for (const r of [...journal.resources()].reverse()) {
    if (r.state === 'removed') continue;
    try {
      context.signal.throwIfAborted();
      if (r.kind === 'build') await removeBuild(r);
      else if (!provider) throw new AimError('E_PROVIDER_NOT_INSTALLED', `provider ${publication.provider} is not installed`, ExitCode.usage);
      else await providerStep(provider.name, context.source, 'remove', () => provider.remove(r, ctx));
      removed.push(await journal.removed(r));
      context.reporter.emit({ type: 'info', message: `removed ${r.kind} ${r.id}` });
    } catch (e) {
      const error = providerFailure(e, publication.provider, context.source, 'remove');
      left.push({ resource: r, error });
      context.reporter.emit({ type: 'warn', code: 'W_LEFTOVER', message: `could not remove ${r.kind} ${r.id}: ${error.message}` });
      if (context.signal.aborted) break;
    }
  }
  // the output directory goes too when aim made it and nothing else is in it; its own scratch directory goes whole
  if (publication.outDir && publication.outDirCreated && left.every((l) => l.resource.kind !== 'build')) {
    if (isShipBuildDir(publication.outDir, publication.id)) await rm(publication.outDir, { recursive: true, force: true });
    else if ((await readdir(publication.outDir).catch(() => ['?'])).length === 0) await rmdir(publication.outDir).catch(() => {});
  }
  return { removed, left };
}

/**
 * Readies the directory a run builds into. The user's must be new or empty. Aim's scratch
 * directory is cleared of what no live build of the journal holds (what a killed run left).
 */
async function readyOutDir(outDir: string, scratch: string, publication: string, resources: readonly JournalResource[]): Promise<'absent' | 'empty'> {
  if (outDir !== scratch) return emptyOrAbsent(outDir);
  if (!resources.some((r) => r.kind === 'build' && r.state !== 'removed' && inShipBuildDir(r.id, publication))) await rm(scratch, { recursive: true, force: true });
  return 'absent';
}

/**
 * Builds in aim's scratch space do not outlive a published publication: what a later ship needs
 * of them (the block map a new snapshot is diffed against, the files a resume reuses) is in the
 * journal or needed only until it is published. Each build is removed and marked removed, then the
 * publication's scratch directory. One that cannot be removed is warned about and stays in the
 * journal (aim ship rm tries again; gc keeps it meanwhile). Returns whether any was removed.
 */
async function dropScratchBuilds(store: PublicationStore, publication: string, journal: Journal, reporter: Reporter): Promise<boolean> {
  const builds = journal.resources().filter((r) => r.kind === 'build' && r.state !== 'removed' && inShipBuildDir(r.id, publication));
  const p = await store.get(publication);
  const scratch = p?.outDir !== undefined && isShipBuildDir(p.outDir, publication) ? p.outDir : undefined;
  if (builds.length === 0 && !scratch) return false;
  let left = 0;
  for (const r of builds) {
    try {
      await removeBuild(r);
      await journal.removed(r);
    } catch (e) {
      left++;
      reporter.emit({ type: 'warn', code: 'W_LEFTOVER', message: `could not remove the build ${r.id} from aim's scratch space: ${(e as Error).message}` });
    }
  }
  if (left > 0) return false;
  if (scratch) {
    await rm(scratch, { recursive: true, force: true });
    await store.update(publication, { outDir: undefined, outDirCreated: false });
  }
  if (builds.length > 0) reporter.emit({ type: 'info', message: `removed ${builds.length} build(s) from aim's scratch space: published, they are not needed any more` });
  return builds.length > 0;
}

/**
 * Publishes through the provider under the journal: lease on the idempotency key, observe, plan,
 * apply. A publication found published and in place is reported, not repeated; an interrupted one
 * is continued. On failure everything the journal holds is removed (rollback); on Ctrl-C or
 * SIGTERM the journal keeps what exists, for `aim ship resume` or `aim ship rm`.
 */
export async function runPublication(repo: Repository, input: PublicationInput, reporter: Reporter): Promise<PublicationOutcome> {
  const store = repo.catalog.publications;
  const { provider, source, signal } = input;
  const owner = newLeaseOwner();
  const fresh: NewPublication = { key: input.key, provider: provider.name, source, imageId: input.image.id, imageRef: input.image.ref, target: input.where, options: input.journalOptions };
  const before = await store.live(input.key);
  // a first ship checks the user's output directory before it journals anything
  if (!before && input.outDir !== undefined) await emptyOrAbsent(input.outDir);
  const { claim, waited } = await acquire(store, fresh, owner, signal, reporter);
  let publication = claim.publication;
  const priorState = claim.created ? undefined : publication.state;
  const base = providerContext(reporter, signal, input.env);
  const built: { artifacts: Artifact[]; kernel?: KernelChoice } = { artifacts: [] };
  let resumed = false;
  try {
    const resources = await store.resources(publication.id);
    const scratch = shipBuildDir(repo, publication.id);
    let outDir = input.outDir ?? scratch;
    // an earlier run (interrupted, killed mid-apply, or a removal cut short) left resources to reconcile
    resumed = priorState !== undefined && priorState !== 'published' && resources.some((r) => r.state !== 'removed');
    if (claim.created) {
      const state = await readyOutDir(outDir, scratch, publication.id, resources);
      await store.update(publication.id, { outDir, outDirCreated: state === 'absent' });
    } else if (publication.outDir && publication.outDir !== outDir && resources.some((r) => r.kind === 'build' && r.state !== 'removed')) {
      reporter.emit({ type: 'info', message: `publication ${publication.id} continues in ${publication.outDir}, where its earlier run built` });
      outDir = publication.outDir;
    } else if (publication.outDir !== outDir) {
      const state = await readyOutDir(outDir, scratch, publication.id, resources);
      await store.update(publication.id, { outDir, outDirCreated: state === 'absent' });
    }
    publication = (await store.get(publication.id))!;

    const target: ShipTarget<Record<string, unknown>> = { provider: provider.name, image: input.image, options: input.options, where: input.where, key: input.key, journal: resources, earlier: earlierResources(store, provider.name, input.key) };
    // the plan made before the lease holds when the lease found nothing (no other run came first)
    let plan = claim.created && !before && !waited ? input.plan : undefined;
    if (!plan) {
      const observed = await providerStep(provider.name, source, 'observe', () => provider.observe(target, base));
      plan = await providerStep(provider.name, source, 'plan', () => provider.plan(input.image, observed, input.options));
    }
    const journal = openJournal(store, publication.id, resources);
    if (plan.upToDate) {
      for (const r of plan.adopt ?? []) if (!journal.find(r.kind, r.id)) await journal.created(await journal.begin(r));
      const published = (plan.published ?? (priorState === 'published' ? publication.published : [])) as Published[];
      // a run killed after its apply, before its scratch builds went, left them: they go now
      const buildsRemoved = await dropScratchBuilds(store, publication.id, journal, reporter);
      await store.release(publication.id, owner, { state: 'published', plan, published, error: undefined });
      return { publication: await viewOf(store, (await store.get(publication.id))!), plan, alreadyPublished: true, resumed: false, waited, artifacts: [], buildsRemoved, published };
    }
    await store.update(publication.id, { state: 'applying', plan, options: input.journalOptions, error: undefined });
    reporter.emit({ type: 'stage', stage: 'ship', status: 'start', detail: `${provider.name} (${source}) publication ${publication.id}${resumed ? ', resumed' : ''}` });
    const context: ApplyContext = {
      ...base,
      options: input.options,
      target,
      publication: publication.id,
      journal,
      resuming: resumed,
      outDir,
      build: journalledBuilder(repo, { imageId: input.image.id, outDir, journal, signal, reporter, provider: provider.name }, built),
    };
    const step = resumed && provider.resume ? provider.resume.bind(provider) : provider.apply.bind(provider);
    const result = await settle(providerStep(provider.name, source, 'apply', () => step(plan, context)), signal, provider.name);
    reporter.emit({ type: 'stage', stage: 'ship', status: 'done' });
    // before the release: a run killed in between leaves the publication to resume, which removes them then
    const buildsRemoved = await dropScratchBuilds(store, publication.id, journal, reporter);
    await store.release(publication.id, owner, { state: 'published', published: result.published, error: undefined });
    return {
      publication: await viewOf(store, (await store.get(publication.id))!),
      plan,
      alreadyPublished: false,
      resumed,
      waited,
      artifacts: built.artifacts,
      buildsRemoved,
      published: result.published,
      ...(built.kernel ? { kernel: built.kernel } : {}),
    };
  } catch (e) {
    const error = e instanceof AimError ? e : providerFailure(e, provider.name, source, 'apply');
    if (signal.aborted) {
      await store.release(publication.id, owner, { state: 'interrupted', error: { code: 'E_INTERRUPTED', message: 'interrupted' } });
      const held = (await store.resources(publication.id)).filter((r) => r.state !== 'removed');
      throw new InterruptedError(`interrupted: publication ${publication.id} stopped; its journal holds ${held.length} resource(s) (${held.map((r) => `${r.kind} ${r.state}`).join(', ') || 'none'})`, {
        hint: `aim ship resume ${publication.id} finishes it; aim ship rm ${publication.id} removes what it created`,
        cause: e,
      });
    }
    // a failed publication is rolled back whole: what the journal holds is removed
    const { left } = await removeResources(store, (await store.get(publication.id))!, provider, input.options, { reporter, signal, env: input.env, source });
    // a first run found its output directory empty or absent: it leaves it so
    const current = (await store.get(publication.id))!;
    if (claim.created && current.outDir && left.length === 0) await removePartialOutput(current.outDir, current.outDirCreated ? 'absent' : 'empty');
    await store.release(publication.id, owner, { state: 'failed', error: { code: error.code, message: error.message } });
    if (left.length > 0) {
      throw new AimError(error.code, error.message, error.exitCode, {
        cause: e,
        hint: `${left.length} resource(s) could not be removed (${left.map((l) => `${l.resource.kind} ${l.resource.id}`).join(', ')}): aim ship rm ${publication.id} tries again`,
      });
    }
    throw error;
  } finally {
    // whatever happened above, the lease does not outlive the run (a no-op once released)
    await store.release(publication.id, owner).catch(() => {});
  }
}

/** A BusyError for a publication another live run holds. */
export function busyError(p: PublicationRecord): BusyError {
  return new BusyError(`publication ${p.id} is held by a running aim (pid ${p.owner?.pid} on ${p.owner?.host})`, { hint: 'wait for it to finish (or stop it with Ctrl-C), then run this again' });
}
