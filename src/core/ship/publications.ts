import { AimError, ConfigError, ExitCode, NotFoundError } from '../../lib/errors.js';
import type { Reporter } from '../../lib/reporter.js';
import type { PublicationRecord } from '../model/publication.js';
import { effectiveState, newLeaseOwner, ownerAlive, type PublicationStore } from '../repository/catalog-publications.js';
import type { Repository } from '../repository/repository.js';
import { optionSpecs, validateOptions } from './options.js';
import { busyError, removeResources, runPublication, viewOf, type PublicationOutcome, type PublicationView } from './publication-run.js';
import type { AnyProvider } from './provider.js';

/** A publication by id or unique id prefix (at least 4 characters). */
export async function findPublication(store: PublicationStore, ref: string): Promise<PublicationRecord> {
  const exact = await store.get(ref);
  if (exact) return exact;
  const ids = /^[0-9a-f]{4,}$/.test(ref) ? await store.findIds(ref) : [];
  if (ids.length === 1) return (await store.get(ids[0]!))!;
  if (ids.length > 1) throw new NotFoundError(`publication id prefix ${ref} is ambiguous (${ids.length} publications)`, { hint: 'give more characters' });
  throw new AimError('E_NO_PUBLICATION', `no publication "${ref}"`, ExitCode.notFound, { hint: 'list them with: aim ship list' });
}

/** The error for a publication whose provider is not installed (a plugin removed since). */
export function providerMissing(p: PublicationRecord): AimError {
  return new AimError('E_PROVIDER_NOT_INSTALLED', `publication ${p.id} was made by provider "${p.provider}"${p.source !== 'built-in' ? ` (plugin ${p.source})` : ''}, which is not installed`, ExitCode.usage, {
    hint: p.source !== 'built-in' ? `install the plugin again (aim plugins install ${p.source}), then run this again` : 'see aim provider list',
  });
}

export interface ListFilter {
  provider?: string;
  state?: string;
  /** Also the removed ones. */
  all?: boolean;
}

/** Publications, oldest first, with their resources and effective state (a killed run's shows interrupted). */
export async function listPublications(repo: Repository, filter: ListFilter = {}): Promise<PublicationView[]> {
  const store = repo.catalog.publications;
  const out: PublicationView[] = [];
  for (const p of await store.list()) {
    const state = effectiveState(p);
    if (filter.provider && p.provider !== filter.provider) continue;
    if (filter.state ? state !== filter.state : !filter.all && state === 'removed') continue;
    out.push(await viewOf(store, p));
  }
  return out;
}

interface RunContext {
  env: NodeJS.ProcessEnv;
  signal: AbortSignal;
}

/**
 * The options a publication was started with, validated again now. Secret options were never
 * journalled: they come from their environment variable again.
 */
function storedOptions(provider: AnyProvider, p: PublicationRecord, env: NodeJS.ProcessEnv): Record<string, unknown> {
  const fromEnv: Record<string, unknown> = {};
  for (const o of optionSpecs(provider.options)) if (o.secret && o.env && env[o.env]) fromEnv[o.name] = env[o.env];
  return validateOptions(provider.name, provider.options, { ...fromEnv, ...p.options }) as Record<string, unknown>;
}

/**
 * Continues a publication from its journal with the options it was started with: the provider
 * observes again, plans, and its resume path (or apply, reconciling with the journal) finishes
 * what is missing. A publication found complete is reported as already published.
 */
export async function resumePublication(repo: Repository, provider: AnyProvider, p: PublicationRecord, input: RunContext & { outDir?: string }, reporter: Reporter): Promise<PublicationOutcome> {
  const state = effectiveState(p);
  if (state === 'removed') throw new ConfigError(`publication ${p.id} was removed: there is nothing to resume`, { hint: `ship the image again: aim ship ${p.provider} ${p.imageRef} …` });
  if (ownerAlive(p.owner)) throw busyError(p);
  if (!(await repo.catalog.getImage(p.imageId))) throw new NotFoundError(`publication ${p.id} ships image ${p.imageId.slice(0, 12)}, which is no longer in the repository`, { hint: `aim ship rm ${p.id} removes what it created` });
  // the directory given, else the recorded one, else (none recorded, or its builds removed) aim's scratch space
  const outDir = input.outDir ?? p.outDir;
  return runPublication(
    repo,
    { provider, source: p.source, image: { id: p.imageId, ref: p.imageRef }, journalOptions: p.options, options: storedOptions(provider, p, input.env), where: p.target, key: p.key, outDir, env: input.env, signal: input.signal },
    reporter,
  );
}

export interface RemoveResult {
  publication: PublicationView;
  removed: PublicationView['resources'];
  left: { kind: string; id: string; error: { code: string; message: string } }[];
}

/**
 * Removes what a publication's journal holds, newest first, through the provider's remove (builds
 * by aim), and marks it removed. What cannot be removed stays in the journal: run it again.
 */
export async function removePublication(repo: Repository, provider: AnyProvider | undefined, p: PublicationRecord, input: RunContext, reporter: Reporter): Promise<RemoveResult> {
  const store = repo.catalog.publications;
  const owner = newLeaseOwner();
  const claim = await store.claimId(p.id, owner);
  if (!claim || claim.busy) throw busyError(p);
  try {
    const live = (await store.resources(p.id)).filter((r) => r.state !== 'removed');
    if (!provider && live.some((r) => r.kind !== 'build')) throw providerMissing(p);
    const options = provider ? storedOptions(provider, p, input.env) : {};
    await store.update(p.id, { state: 'removing' });
    reporter.emit({ type: 'stage', stage: 'remove', status: 'start', detail: `publication ${p.id} (${live.length} resource(s))` });
    const { removed, left } = await removeResources(store, claim.publication, provider, options, { reporter, signal: input.signal, env: input.env, source: p.source });
    const done = left.length === 0;
    await store.release(p.id, owner, done ? { state: 'removed' } : { state: 'removing', error: { code: left[0]!.error.code, message: left[0]!.error.message } });
    if (!done) {
      const first = left[0]!.error;
      throw new AimError(first.code, `publication ${p.id}: ${left.length} resource(s) could not be removed: ${left.map((l) => `${l.resource.kind} ${l.resource.id} (${l.error.message})`).join('; ')}`, first.exitCode, {
        hint: input.signal.aborted ? `interrupted: aim ship rm ${p.id} continues` : `fix the cause, then run aim ship rm ${p.id} again`,
      });
    }
    reporter.emit({ type: 'stage', stage: 'remove', status: 'done' });
    return { publication: await viewOf(store, (await store.get(p.id))!), removed, left: [] };
  } finally {
    await store.release(p.id, owner).catch(() => {});
  }
}
