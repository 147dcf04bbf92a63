import type { Reporter } from '../../lib/reporter.js';
import type { Artifact, BuildFormat, BuildRequest, BuildResult } from '../build/types.js';

/**
 * One option a provider takes. On the command line it is `--<name> value` (a boolean is a bare
 * `--<name>`), or `--opt <name>=value` for any provider; `env` names the variable read when the
 * option is not given (flags > environment, as everywhere in aim).
 */
export interface ProviderOption {
  /** kebab-case, e.g. "datastore-url". */
  name: string;
  description: string;
  type: 'string' | 'boolean';
  required?: boolean;
  env?: string;
}

/** Option values after parsing: strings, or true/false for boolean options; absent when not given. */
export type ProviderOptions = Record<string, string | boolean | undefined>;

/** What `aim ship` asks a provider to do, with the options already checked against `options`. */
export interface ShipRequest {
  /** Resolved image id. */
  imageId: string;
  /** The image as the user named it ("slim/nginx:1"), for names of uploaded files. */
  imageRef: string;
  /** Absolute path of the new or empty directory the artifacts are built into. */
  outDir: string;
  options: ProviderOptions;
}

/** The build options a provider may set; the rest (entrypoint, init, headroom) take aim's defaults. */
export type ProviderBuildOptions = Partial<Pick<BuildRequest, 'platform' | 'modules' | 'entrypoint' | 'init' | 'headroomMiB' | 'kernelImage' | 'ref' | 'memoryMiB' | 'vmName' | 'vmdk'>>;

/** What aim lends a provider: its builders, its reporter, the environment and the Ctrl-C signal. */
export interface ShipContext {
  reporter: Reporter;
  /** Aborts on Ctrl-C: stop, undo what this run did (uploads), and reject. */
  signal: AbortSignal;
  env: NodeJS.ProcessEnv;
  /** Builds the image in `format` into `<outDir>/<subdir>` (a new directory) with aim's builders. */
  build(format: BuildFormat, subdir: string, options?: ProviderBuildOptions): Promise<BuildResult>;
  /** Throws the same ConfigError `build` would when `format` is not built into this aim yet. */
  requireFormat(format: BuildFormat): void;
}

/** What a ship would do, computed without side effects (shown by `aim ship --dry-run`). */
export interface ShipPlan {
  builds: { format: BuildFormat; dir: string }[];
  uploads: { file: string; destination: string }[];
  notes: string[];
}

/** Something a provider published: an uploaded file, an AMI id, a PXE boot entry. */
export interface Published {
  kind: string;
  location: string;
  bytes?: number;
  sha256?: string;
}

export interface ShipOutcome {
  artifacts: Artifact[];
  published: Published[];
}

/**
 * A way to publish an image: built-in ones live in providers/<name>/ and are listed in
 * providers/index.ts; third-party ones come from oclif plugins through the `aim:providers` hook.
 * Each exports one object that `satisfies Provider`.
 *
 * `plan` is pure (what would be built and uploaded); `check` validates options, credentials and
 * tools before any work and throws an AimError; `ship` does the work, reports progress through
 * `context.reporter`, and on failure undoes what it published (aim removes the built artifacts).
 */
export interface Provider {
  name: string;
  summary: string;
  options: ProviderOption[];
  plan(request: ShipRequest): ShipPlan;
  check(request: ShipRequest, context: ShipContext): Promise<void>;
  ship(request: ShipRequest, context: ShipContext): Promise<ShipOutcome>;
}
