import { rm, stat } from 'node:fs/promises';
import { isAbsolute, join, normalize } from 'node:path';
import { AimError, ProviderError, isAimError } from '../../lib/errors.js';
import { runTool } from '../../lib/exec.js';
import { sha256File } from '../../lib/fs.js';
import type { Reporter } from '../../lib/reporter.js';
import type { KernelChoice } from '../bootable/kernel-choice.js';
import { buildImage, requireFormat } from '../build/build-image.js';
import type { Artifact, BuildResult } from '../build/types.js';
import { emptyOrAbsent } from '../export/export-image.js';
import type { JournalResource } from '../model/publication.js';
import type { Repository } from '../repository/repository.js';
import type { ApplyContext, Journal, ProviderContext } from './provider.js';

/** The context every provider step gets. */
export function providerContext(reporter: Reporter, signal: AbortSignal, env: NodeJS.ProcessEnv): ProviderContext {
  return {
    reporter,
    signal,
    env,
    requireFormat: (format) => void requireFormat(format),
    exec: async (tool, args, options = {}) => {
      const r = await runTool(tool, args, { ...options, cancelSignal: signal });
      return { stdout: r.stdout, stderr: r.stderr };
    },
  };
}

const pluginHint = (source: string) => (source === 'built-in' ? undefined : `provider from the plugin ${source}; report problems to its authors`);

/**
 * What a provider threw, as an AimError: aim's own errors pass unchanged (also those of another
 * copy of aim a plugin bundles: same code, exit code and hint); anything else becomes a
 * ProviderError naming the provider.
 */
export function providerFailure(e: unknown, provider: string, source: string, step: string): AimError {
  if (isAimError(e)) return e;
  const like = e as { code?: unknown; exitCode?: unknown; hint?: unknown; message?: unknown } | null;
  if (like && typeof like.code === 'string' && /^E_[A-Z_]+$/.test(like.code) && typeof like.exitCode === 'number') {
    return new AimError(like.code, String(like.message), like.exitCode, { cause: e, hint: typeof like.hint === 'string' ? like.hint : pluginHint(source) });
  }
  const message = e instanceof Error ? e.message : String(e);
  return new ProviderError(`provider ${provider}${step === 'apply' ? ' failed' : ''}: ${message}`, { cause: e, hint: pluginHint(source) });
}

/** Runs one provider step; what it throws becomes an AimError (see providerFailure). */
export async function providerStep<T>(provider: string, source: string, step: string, run: () => T | Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (e) {
    throw providerFailure(e, provider, source, step);
  }
}

interface BuildRecord {
  format: string;
  subdir: string;
  result?: BuildResult;
}

/** Whether every file a journalled build wrote is still there, same size and sha256. */
async function intact(result: BuildResult | undefined, signal: AbortSignal): Promise<boolean> {
  if (!result || result.artifacts.length === 0) return false;
  for (const a of result.artifacts) {
    signal.throwIfAborted();
    const st = await stat(a.path).catch(() => undefined);
    if (!st?.isFile() || st.size !== a.bytes || (await sha256File(a.path)) !== a.sha256) return false;
  }
  return true;
}

/** Removes a journalled build (its directory, which aim created inside the output directory). */
export async function removeBuild(resource: JournalResource): Promise<void> {
  await rm(resource.id, { recursive: true, force: true });
}

/**
 * `context.build` for apply: each build is a "build" resource in the journal (its directory),
 * so a failure or `aim ship rm` removes it, and a resume reuses it when its files are intact.
 */
export function journalledBuilder(
  repo: Repository,
  run: { imageId: string; outDir: string; journal: Journal; signal: AbortSignal; reporter: Reporter; provider: string },
  built: { artifacts: Artifact[]; kernel?: KernelChoice },
): ApplyContext['build'] {
  return async (format, subdir, options = {}) => {
    const rel = normalize(subdir);
    if (isAbsolute(rel) || rel === '.' || rel === '..' || rel.startsWith('../')) throw new ProviderError(`provider ${run.provider} asked to build into "${subdir}": must be a subdirectory of the output directory`);
    const dir = join(run.outDir, rel);
    const prior = run.journal.resources().findLast((r) => r.kind === 'build' && r.state !== 'removed' && (r.data as unknown as BuildRecord).format === format && (r.data as unknown as BuildRecord).subdir === rel);
    const priorResult = (prior?.data as unknown as BuildRecord | undefined)?.result;
    let result: BuildResult;
    if (prior?.state === 'created' && (await intact(priorResult, run.signal))) {
      run.reporter.emit({ type: 'info', message: `reusing the ${format} build of the interrupted run (${prior.id}): files intact` });
      result = priorResult!;
    } else {
      if (prior) {
        await removeBuild(prior);
        await run.journal.removed(prior);
      }
      // never claim (and later remove) a directory that holds something aim did not write
      await emptyOrAbsent(dir);
      const resource = await run.journal.begin({ kind: 'build', id: dir, data: { format, subdir: rel } });
      // a later bootable build (the OVA after its VMDK) boots the kernel the first one chose
      result = await buildImage(
        repo,
        { imageId: run.imageId, format, outDir: dir, platform: 'qemu', modules: [], init: 'aim', headroomMiB: 64, ...options, kernelImage: options.kernelImage ?? built.kernel?.ref, signal: run.signal },
        run.reporter,
      );
      await run.journal.created(resource, { data: { format, subdir: rel, result } });
    }
    built.kernel ??= result.kernel;
    built.artifacts.push(...result.artifacts);
    return result;
  };
}
