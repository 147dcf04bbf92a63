import { resolve } from 'node:path';
import { ConfigError } from '../../lib/errors.js';
import type { Reporter } from '../../lib/reporter.js';
import type { KernelChoice } from '../bootable/kernel-choice.js';
import type { Artifact } from '../build/types.js';
import type { Repository } from '../repository/repository.js';
import { earlierResources, idempotencyKey } from './journal.js';
import { gatherOptions, journalledOptions, validateOptions, type GivenOptions, type OptionInput } from './options.js';
import { runPublication, viewOf, type PublicationView } from './publication-run.js';
import type { AnyProvider, ProviderPlan, Published, ShipImage } from './provider.js';
import { providerContext, providerStep } from './ship-context.js';

export interface ShipImageRequest {
  imageId: string;
  imageRef: string;
  /** The user's output directory (--out); without it aim builds in its scratch space and removes the builds once published. */
  outDir?: string | undefined;
  /** Option values given on the command line (`--flag` and `--opt name=value`, merged by givenOptions). */
  options: GivenOptions;
  /** Option values from a template file (lowest precedence after defaults). */
  fileOptions?: OptionInput;
  dryRun?: boolean;
  signal?: AbortSignal;
  env?: NodeJS.ProcessEnv;
}

export interface ShipResult {
  provider: string;
  /** "built-in" or the plugin that contributed the provider. */
  source: string;
  imageId: string;
  /** Where the builds are: the user's --out (absent when aim built in its scratch space and removed them, or built nothing there). */
  outDir?: string;
  dryRun: boolean;
  /** The idempotency key: sha256 of (image id, provider, target). */
  key: string;
  target: string;
  plan: ProviderPlan;
  /** The publication (absent on a dry run of a first ship). */
  publication?: PublicationView;
  alreadyPublished: boolean;
  resumed: boolean;
  waited: boolean;
  artifacts: Artifact[];
  /** The builds were in aim's scratch space (no --out) and are removed now that it is published. */
  buildsRemoved: boolean;
  published: Published[];
  /** The kernel the provider's bootable builds boot, and how it was chosen (absent when it built none). */
  kernel?: KernelChoice;
  seconds: number;
}

/**
 * The options given on the command line, merged: `--opt name=value` pairs (repeated names make a
 * list) and the provider's own flags (undefined when absent). The same option given both ways is an error.
 */
export function givenOptions(pairs: readonly string[], flags: Record<string, string | boolean | string[] | undefined>): GivenOptions {
  // no prototype: an option may be called "constructor" or "__proto__"
  const options = Object.create(null) as GivenOptions;
  for (const o of pairs) {
    const eq = o.indexOf('=');
    if (eq <= 0) throw new ConfigError(`--opt "${o}" is not name=value`);
    const name = o.slice(0, eq);
    const value = o.slice(eq + 1);
    const had = options[name];
    options[name] = had === undefined ? value : [...(Array.isArray(had) ? had : [String(had)]), value];
  }
  for (const [name, v] of Object.entries(flags)) {
    if (v === undefined || (Array.isArray(v) && v.length === 0)) continue;
    if (Object.hasOwn(options, name)) throw new ConfigError(`option ${name} given twice (--${name} and --opt ${name}=…)`);
    options[name] = v;
  }
  return options;
}

/** Options of a provider from every source (flags > environment > file > defaults), validated. */
export function resolveProviderOptions(provider: AnyProvider, given: GivenOptions, env: NodeJS.ProcessEnv, file: OptionInput = {}): { input: OptionInput; options: Record<string, unknown> } {
  const input = gatherOptions(provider.name, provider.options, given, env, file);
  return { input, options: validateOptions(provider.name, provider.options, input) as Record<string, unknown> };
}

/**
 * Ships an image through a provider. Options are checked first; `--dry-run` observes and plans
 * only (no lease, no journal, nothing written). Otherwise the publication runs under its
 * journal (runPublication): the same ship twice gives one publication.
 */
export async function shipImage(repo: Repository, provider: AnyProvider, source: string, input: ShipImageRequest, reporter: Reporter): Promise<ShipResult> {
  const started = process.hrtime.bigint();
  const env = input.env ?? process.env;
  const signal = input.signal ?? new AbortController().signal;
  const outDir = input.outDir === undefined ? undefined : resolve(input.outDir);
  const { input: optionInput, options } = resolveProviderOptions(provider, input.options, env, input.fileOptions);
  const image: ShipImage = { id: input.imageId, ref: input.imageRef };
  const where = await providerStep(provider.name, source, 'target', () => provider.target(options, { image, outDir }));
  if (typeof where !== 'string' || where === '') throw new ConfigError(`provider ${provider.name} gave no target`);
  const key = idempotencyKey(image.id, provider.name, where);
  const store = repo.catalog.publications;
  const live = await store.live(key);
  const seconds = () => Number(process.hrtime.bigint() - started) / 1e9;

  // Observed and planned before the lease: bad credentials or a conflict stop the run before the journal is touched.
  const base = providerContext(reporter, signal, env);
  const journal = live ? await store.resources(live.id) : [];
  const observed = await providerStep(provider.name, source, 'observe', () => provider.observe({ provider: provider.name, image, options, where, key, journal, earlier: earlierResources(store, provider.name, key) }, base));
  const plan = await providerStep(provider.name, source, 'plan', () => provider.plan(image, observed, options));
  const common = { provider: provider.name, source, imageId: image.id, ...(outDir ? { outDir } : {}), key, target: where };
  if (input.dryRun) {
    return { ...common, dryRun: true, plan, ...(live ? { publication: await viewOf(store, live) } : {}), alreadyPublished: plan.upToDate === true && live?.state === 'published', resumed: false, waited: false, artifacts: [], buildsRemoved: false, published: [], seconds: seconds() };
  }
  const outcome = await runPublication(
    repo,
    { provider, source, image, journalOptions: journalledOptions(provider.options, optionInput), options, where, key, outDir, env, signal, plan },
    reporter,
  );
  // where the builds are now: the publication's directory, else the one given (none when they were in scratch and are gone)
  const builtIn = outcome.publication.outDir ?? (outcome.buildsRemoved ? undefined : outDir);
  const { outDir: _given, ...rest } = common;
  return { ...rest, ...(builtIn ? { outDir: builtIn } : {}), dryRun: false, ...outcome, seconds: seconds() };
}
