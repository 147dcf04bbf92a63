/**
 * The provider contract (v2): how aim publishes an image somewhere (a datastore, a cloud).
 *
 *   options   a zod object schema: help, flags, `--opt k=v`, environment, validation, templates
 *   target    where, as one canonical string: with the image id and the provider name it gives
 *             the idempotency key (one publication per key)
 *   observe   async, reads remote state (what exists already, e.g. by the idempotency key's tag)
 *   plan      pure: what apply will do; what `aim ship --dry-run` prints (JSON with --json)
 *   apply     does it, journalling every resource BEFORE the call that creates it, so a process
 *             killed at any moment leaves a journal naming everything that may exist
 *   remove    removes one journalled resource (`aim ship rm`, and the rollback of a failed run)
 *
 * Built-in providers live in providers/<name>/ (the CLI injects them); plugins import this
 * contract from `aim/provider`. Every method gets an AbortSignal and passes it to every tool and
 * SDK call (execa's `cancelSignal`, the AWS SDK's `abortSignal`).
 */
import type { z } from 'zod';
import type { Reporter } from '../../lib/reporter.js';
import type { BuildFormat, BuildRequest, BuildResult } from '../build/types.js';
import type { JournalResource } from '../model/publication.js';
import type { OptionsSchema } from './options.js';

export type { OptionsSchema } from './options.js';

/** The image being shipped. */
export interface ShipImage {
  /** Resolved image id (sha256 hex of its manifest). */
  id: string;
  /** The image as the user named it ("slim/nginx:1"): names of published things derive from it. */
  ref: string;
}

export type { JournalResource, ResourceState } from '../model/publication.js';

/** What a resource is called before it exists. */
export interface NewResource {
  kind: string;
  id: string;
  location?: string;
  data?: Record<string, unknown>;
}

/**
 * The publication's journal in the catalog. Every write is durable when the promise resolves:
 * await `begin` before the call that creates the resource, `created` after it.
 */
export interface Journal {
  readonly publication: string;
  /** Every resource recorded so far (this run's and earlier runs' of the same publication), oldest first. */
  resources(): readonly JournalResource[];
  /** The latest resource of that kind and id that is not removed. */
  find(kind: string, id: string): JournalResource | undefined;
  /** Records a resource about to be (re)created, state pending; an existing one of that kind and id is reused (set back to pending). */
  begin(resource: NewResource): Promise<JournalResource>;
  /** The resource exists; `id` replaces a provisional one (the snapshot id a call returned), `data` is merged. */
  created(resource: JournalResource, patch?: { id?: string; location?: string; data?: Record<string, unknown> }): Promise<JournalResource>;
  /** Merges progress into `data` (a checkpoint resume starts from), state unchanged. */
  update(resource: JournalResource, data: Record<string, unknown>): Promise<JournalResource>;
  /** The resource is gone. */
  removed(resource: JournalResource): Promise<JournalResource>;
}

/** What every step gets. */
export interface ProviderContext {
  reporter: Reporter;
  /** Aborts on Ctrl-C or SIGTERM: stop at once and reject; the journal keeps what exists. */
  signal: AbortSignal;
  /** Where credentials come from (never from options). */
  env: NodeJS.ProcessEnv;
  /** Throws the ConfigError `build` would when `format` is not built into this aim. */
  requireFormat(format: BuildFormat): void;
  /** Runs an external tool (argument array, never a shell) with `cancelSignal` set to `signal`. */
  exec(tool: string, args: readonly string[], options?: { cwd?: string; input?: string | Uint8Array; env?: NodeJS.ProcessEnv }): Promise<{ stdout: string; stderr: string }>;
}

/** Where a ship goes, as observe sees it. */
export interface ShipTarget<O> {
  provider: string;
  image: ShipImage;
  options: O;
  /** `provider.target(options)`. */
  where: string;
  /**
   * The idempotency key: hex sha256 of (image id, provider, where). The same ship gives the same
   * key; use it as the cloud's ClientToken and as a tag, and find earlier results by it.
   */
  key: string;
  /** What the journal holds for this key (earlier or interrupted runs), oldest first; empty for a first ship. */
  journal: readonly JournalResource[];
  /**
   * Resources of a kind that this provider's other publications created and still hold, newest
   * first: what a new version builds on (the parent snapshot of an incremental upload, with the
   * block map its journal recorded). Read-only.
   */
  earlier(kind: string): Promise<EarlierResource[]>;
}

/** A resource of another publication of the same provider, with where it came from. */
export interface EarlierResource extends JournalResource {
  publication: string;
  imageId: string;
  imageRef: string;
  target: string;
}

/** One line of a plan, for people: `upload  slim-nginx-1.ova  → https://…`. */
export interface PlanStep {
  action: string;
  subject: string;
  detail?: string;
}

/**
 * What apply will do, computed without side effects from the image, what observe saw and the
 * options. Must be JSON (it is journalled and printed); providers add their own fields.
 */
export interface ProviderPlan {
  steps: PlanStep[];
  notes?: string[];
  /** Observe found everything in place: nothing to do, apply is not called ("already published"). */
  upToDate?: boolean;
  /** With upToDate: what is published (else what the journal recorded last). */
  published?: Published[];
  /** With upToDate: resources observe found (by the idempotency key's tag) that the journal lacks; recorded as created. */
  adopt?: NewResource[];
}

/** The build options a provider may set; the rest take aim's defaults. */
export type ProviderBuildOptions = Partial<Pick<BuildRequest, 'platform' | 'modules' | 'entrypoint' | 'init' | 'headroomMiB' | 'kernelImage' | 'ref' | 'memoryMiB' | 'vmName' | 'vmdk' | 'sizeMiB' | 'idSeed'>>;

/** What apply gets: the journal, aim's builders and the publication it works for. */
export interface ApplyContext<O = Record<string, unknown>> extends ProviderContext {
  options: O;
  target: ShipTarget<O>;
  /** The publication id (`aim ship resume <id>`, `aim ship rm <id>`). */
  publication: string;
  journal: Journal;
  /** True when an earlier run of this publication was interrupted: reconcile with the journal, skip what is created. */
  resuming: boolean;
  /** The directory builds go into: the user's --out, or aim's scratch space for this publication (emptied once published). */
  outDir: string;
  /**
   * Builds the image in `format` into `<outDir>/<subdir>` with aim's builders, journalled as a
   * "build" resource: on resume a build whose files are intact (size and sha256) is reused.
   */
  build(format: BuildFormat, subdir: string, options?: ProviderBuildOptions): Promise<BuildResult>;
}

/** What remove gets. */
export interface RemoveContext<O = Record<string, unknown>> extends ProviderContext {
  options: O;
  publication: string;
}

/** Something published, for the result and `aim ship list`. */
export interface Published {
  kind: string;
  location: string;
  id?: string;
  bytes?: number;
  sha256?: string;
}

export interface ApplyResult {
  published: Published[];
}

/**
 * A way to publish an image. Export one object that `satisfies Provider` (or pass it to
 * `defineProvider` from `aim/provider`, which infers the option types for you).
 */
export interface Provider<S extends OptionsSchema = OptionsSchema, Observed = unknown, Plan extends ProviderPlan = ProviderPlan> {
  /** lower-case letters, digits and dashes; not "list", "rm" or "resume" (commands of `aim ship`). */
  name: string;
  summary: string;
  options: S;
  /**
   * Where this ship goes, canonical (same place → same string): part of the idempotency key. Pure.
   * `outDir` is the directory the user named with --out; without it (undefined) aim builds in its
   * own scratch space in the repository and removes the builds once the publication is published.
   * A provider whose builds are what it publishes (files the user takes) or that reads them again
   * later throws a ConfigError here asking for --out.
   */
  target(options: z.output<S>, context: { image: ShipImage; outDir: string | undefined }): string;
  /** Reads remote state; checks credentials, tools and formats (before any work). May be called by --dry-run. */
  observe(target: ShipTarget<z.output<S>>, context: ProviderContext): Promise<Observed>;
  /** Pure: no I/O, same inputs → same plan. May throw an AimError when the ship cannot go ahead. */
  plan(image: ShipImage, observed: Observed, options: z.output<S>): Plan;
  /** Does the plan, journalling as it goes; on resume (context.resuming) skips what the journal shows done. */
  apply(plan: Plan, context: ApplyContext<z.output<S>>): Promise<ApplyResult>;
  /**
   * Continues an interrupted publication. Optional: without it aim calls apply again with
   * `resuming` set, and apply reconciles with the journal.
   */
  resume?(plan: Plan, context: ApplyContext<z.output<S>>): Promise<ApplyResult>;
  /** Removes one resource it journalled (not "build": aim removes those). Already gone is success. */
  remove(resource: JournalResource, context: RemoveContext<z.output<S>>): Promise<void>;
}

/** A provider whose types are erased: what the registry and the engine hold. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyProvider = Provider<OptionsSchema, any, ProviderPlan>;
