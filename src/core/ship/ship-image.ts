import { mkdir } from 'node:fs/promises';
import { isAbsolute, join, normalize, resolve } from 'node:path';
import { ConfigError, ProviderError, isAimError, whenAborted } from '../../lib/errors.js';
import type { Reporter } from '../../lib/reporter.js';
import { buildImage, requireFormat } from '../build/build-image.js';
import type { KernelChoice } from '../boot/kernel-choice.js';
import type { Artifact } from '../build/types.js';
import { emptyOrAbsent, removePartialOutput } from '../export/export-image.js';
import type { Repository } from '../repository/repository.js';
import type { Provider, ProviderOptions, Published, ShipContext, ShipPlan, ShipRequest } from './provider.js';

/** How long a provider may take to undo its uploads after Ctrl-C before aim exits anyway. */
const CLEANUP_GRACE_MS = 15_000;

export interface ShipImageRequest {
  imageId: string;
  imageRef: string;
  outDir: string;
  /** Option values given on the command line (strings; "true"/"false" for booleans given as --opt). */
  options: Record<string, string | boolean>;
  dryRun?: boolean;
  signal?: AbortSignal;
  env?: NodeJS.ProcessEnv;
}

export interface ShipResult {
  provider: string;
  /** "built-in" or the plugin that contributed the provider. */
  source: string;
  imageId: string;
  outDir: string;
  dryRun: boolean;
  plan: ShipPlan;
  artifacts: Artifact[];
  published: Published[];
  /** The kernel the provider's bootable builds boot, and how it was chosen (absent when it built none). */
  kernel?: KernelChoice;
  seconds: number;
}

const pluginHint = (source: string) => (source === 'built-in' ? undefined : `provider from the plugin ${source}; report problems to its authors`);

/** Runs a provider step that comes before any work; a plugin's plain Error becomes a ProviderError naming it. */
async function providerStep<T>(provider: Provider, source: string, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (e) {
    if (isAimError(e)) throw e;
    throw new ProviderError(`provider ${provider.name}: ${(e as Error).message ?? String(e)}`, { cause: e, hint: pluginHint(source) });
  }
}

/**
 * The options given on the command line, merged: `--opt name=value` pairs and the provider's own
 * flags (`--datastore-url …`, undefined when absent). The same option given both ways is an error.
 */
export function givenOptions(pairs: readonly string[], flags: Record<string, string | boolean | undefined>): Record<string, string | boolean> {
  // no prototype: an option may be called "constructor" or "__proto__"
  const options: Record<string, string | boolean> = Object.create(null) as Record<string, string | boolean>;
  for (const o of pairs) {
    const eq = o.indexOf('=');
    if (eq <= 0) throw new ConfigError(`--opt "${o}" is not name=value`);
    options[o.slice(0, eq)] = o.slice(eq + 1);
  }
  for (const [name, v] of Object.entries(flags)) {
    if (v === undefined) continue;
    if (Object.hasOwn(options, name)) throw new ConfigError(`option ${name} given twice (--${name} and --opt ${name}=…)`);
    options[name] = v;
  }
  return options;
}

/**
 * Checks given options against the provider's declarations: unknown names and missing required
 * options are reported together; absent options fall back to their environment variable.
 */
export function resolveProviderOptions(provider: Provider, given: Record<string, string | boolean>, env: NodeJS.ProcessEnv): ProviderOptions {
  const problems: string[] = [];
  const out: ProviderOptions = {};
  for (const name of Object.keys(given)) {
    if (!provider.options.some((o) => o.name === name)) problems.push(`unknown option "${name}"`);
  }
  for (const o of provider.options) {
    let v: string | boolean | undefined = given[o.name] ?? (o.env ? env[o.env] : undefined);
    if (o.type === 'boolean' && typeof v === 'string') {
      if (/^(true|1|yes)$/i.test(v)) v = true;
      else if (/^(false|0|no)$/i.test(v)) v = false;
      else problems.push(`${o.name}: "${v}" is not true or false`);
    }
    if (o.type === 'string' && typeof v === 'boolean') problems.push(`${o.name}: needs a value`);
    if (o.required && (v === undefined || v === '')) problems.push(`${o.name} is required${o.env ? ` (or ${o.env})` : ''}`);
    out[o.name] = v;
  }
  if (problems.length > 0) {
    const known = provider.options.map((o) => `--${o.name}${o.type === 'string' ? ' VALUE' : ''}`).join(', ') || 'none';
    throw new ConfigError(`provider ${provider.name}: ${problems.join('; ')}`, { hint: `options of ${provider.name}: ${known}` });
  }
  return out;
}

/**
 * Ships an image through a provider: plan (pure), check (before any work), then ship into a new
 * or empty output directory. On failure or Ctrl-C what was built is removed (the directory too
 * when aim created it); the provider undoes its own uploads.
 */
export async function shipImage(repo: Repository, provider: Provider, source: string, input: ShipImageRequest, reporter: Reporter): Promise<ShipResult> {
  const started = process.hrtime.bigint();
  const env = input.env ?? process.env;
  const outDir = resolve(input.outDir);
  const request: ShipRequest = { imageId: input.imageId, imageRef: input.imageRef, outDir, options: resolveProviderOptions(provider, input.options, env) };
  const state = await emptyOrAbsent(outDir);
  const plan = await providerStep(provider, source, async () => provider.plan(request));
  let kernel: KernelChoice | undefined;
  const result = (artifacts: Artifact[], published: Published[], dryRun: boolean): ShipResult => ({
    provider: provider.name,
    source,
    imageId: input.imageId,
    outDir,
    dryRun,
    plan,
    artifacts,
    published,
    ...(kernel ? { kernel } : {}),
    seconds: Number(process.hrtime.bigint() - started) / 1e9,
  });
  if (input.dryRun) return result([], [], true);

  const signal = input.signal ?? new AbortController().signal;
  const context: ShipContext = {
    reporter,
    signal,
    env,
    requireFormat: (format) => void requireFormat(format),
    build: async (format, subdir, options = {}) => {
      const dir = normalize(subdir);
      if (isAbsolute(dir) || dir === '.' || dir === '..' || dir.startsWith('../')) throw new ProviderError(`provider ${provider.name} asked to build into "${subdir}": must be a subdirectory of the output directory`);
      // a later bootable build (the OVA after its VMDK) boots the kernel the first one chose
      const built = await buildImage(
        repo,
        { imageId: input.imageId, format, outDir: join(outDir, dir), platform: 'qemu', modules: [], init: 'aim', headroomMiB: 64, ...options, kernelImage: options.kernelImage ?? kernel?.ref, signal },
        reporter,
      );
      kernel ??= built.kernel;
      return built;
    },
  };
  await providerStep(provider, source, () => provider.check(request, context));
  const aborted = whenAborted(signal);
  reporter.emit({ type: 'stage', stage: 'ship', status: 'start', detail: `${provider.name} (${source})` });
  try {
    await mkdir(outDir, { recursive: true });
    // Only what the provider rejects with is a provider failure; aim's own errors pass unchanged.
    const shipping = Promise.resolve().then(() => provider.ship(request, context)).catch((e: unknown) => {
      if (isAimError(e)) throw e;
      throw new ProviderError(`provider ${provider.name} failed: ${(e as Error).message ?? String(e)}`, { cause: e, hint: pluginHint(source) });
    });
    // On Ctrl-C the provider gets a moment to undo its uploads (it sees the signal) before we go.
    const interrupted = aborted.promise.catch(async (e: unknown) => {
      await Promise.race([shipping.catch(() => {}), new Promise((r) => setTimeout(r, CLEANUP_GRACE_MS).unref())]);
      throw e;
    });
    const outcome = await Promise.race([shipping, interrupted]);
    reporter.emit({ type: 'stage', stage: 'ship', status: 'done' });
    return result(outcome.artifacts, outcome.published, false);
  } catch (e) {
    await removePartialOutput(outDir, state);
    throw e;
  } finally {
    aborted.dispose();
  }
}
