import { makeScratchDir, sha256File } from '../../lib/fs.js';
import { mkdir, rm, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { ConfigError, cancellationError, throwIfCancelled } from '../../lib/errors.js';
import type { Reporter } from '../../lib/reporter.js';
import { emptyOrAbsent, removePartialOutput } from '../export/export-image.js';
import type { Repository } from '../repository/repository.js';
import { chooseKernel } from '../bootable/kernel-choice.js';
import { checkKernelArgs } from '../pxe/assignments.js';
import { FORMAT_BUILDERS } from './formats.js';
import { BOOTABLE_FORMATS, type Artifact, type BuildFormat, type BuildRequest, type BuildResult, type FormatBuilder } from './types.js';

/** "512", "512M", "2G", "1T" → MiB. */
export function parseSizeMiB(text: string): number {
  const m = /^(\d+)\s*([MGT]i?B?)?$/i.exec(text.trim());
  if (!m) throw new ConfigError(`--size ${text}: expected MiB or a size such as 512M or 2G`);
  const unit = (m[2] ?? 'M')[0]!.toUpperCase();
  return Number(m[1]) * (unit === 'T' ? 1024 * 1024 : unit === 'G' ? 1024 : 1);
}


/** The loader of a format's builder; a ConfigError when the format is not built in yet (lets callers check before work). */
export function requireFormat(format: BuildFormat): () => Promise<FormatBuilder> {
  const load = FORMAT_BUILDERS[format];
  if (!load) throw new ConfigError(`format ${format} is not implemented yet`, { hint: `implemented: ${Object.keys(FORMAT_BUILDERS).join(', ')}` });
  return load;
}

/**
 * Records a build in the catalog (lineage store) with its options, so `aim update` can build the
 * same artifacts of the image's next version. A failure to record is a warning, never a failed build.
 */
async function recordBuild(repo: Repository, request: BuildRequest, outDir: string, reporter: Reporter): Promise<void> {
  const { imageId, format, signal: _signal, outDir: _out, vmdk: _vmdk, ...options } = request;
  try {
    await repo.catalog.lineage.recordBuild({ imageId, format, outDir, options: JSON.parse(JSON.stringify(options)) as Record<string, unknown>, builtAt: new Date().toISOString() });
  } catch (e) {
    reporter.emit({ type: 'warn', code: 'W_BUILD_RECORD', message: `the build was not recorded in the catalog (${(e as Error).message}); aim update will not rebuild it` });
  }
}

/**
 * Builds one artifact format from an image into a new or empty directory. The builder runs with a
 * private scratch directory; on any failure everything it wrote into the output directory is
 * removed (and the directory itself when we created it), so no half artifact is ever left behind.
 */
export async function buildImage(repo: Repository, request: BuildRequest, reporter: Reporter): Promise<BuildResult> {
  if (request.kernelArgs !== undefined) {
    if (!BOOTABLE_FORMATS.includes(request.format)) throw new ConfigError(`--kernel-args: a ${request.format} artifact boots no kernel`, { hint: `kernel arguments go with ${BOOTABLE_FORMATS.join(', ')}` });
    request = { ...request, kernelArgs: checkKernelArgs(request.kernelArgs) };
  }
  const load = requireFormat(request.format);
  const outDir = resolve(request.outDir);
  const state = await emptyOrAbsent(outDir);
  const started = process.hrtime.bigint();
  const builder = await load();
  const entries = await repo.catalog.entries(request.imageId);
  const kernel = BOOTABLE_FORMATS.includes(request.format) ? await chooseKernel(repo, entries, request.kernelImage, reporter) : undefined;
  const workDir = await makeScratchDir('build');
  reporter.emit({ type: 'stage', stage: 'build', status: 'start', detail: `${request.format} → ${outDir}` });
  const signal = request.signal ?? new AbortController().signal;
  try {
    throwIfCancelled(signal);
    await mkdir(outDir, { recursive: true });
    // The builder stops its own tools and streams on abort and returns only when they are gone,
    // so nothing writes into the output once it is removed.
    const written = await builder({ repo, request: { ...request, outDir, kernelImage: kernel?.ref }, entries, workDir, reporter, signal });
    throwIfCancelled(signal);
    const artifacts: Artifact[] = [];
    for (const a of written) artifacts.push({ ...a, bytes: (await stat(a.path)).size, sha256: await sha256File(a.path) });
    reporter.emit({ type: 'stage', stage: 'build', status: 'done' });
    await recordBuild(repo, request, outDir, reporter);
    return { imageId: request.imageId, format: request.format, outDir, artifacts, ...(kernel ? { kernel } : {}), seconds: Number(process.hrtime.bigint() - started) / 1e9 };
  } catch (e) {
    await removePartialOutput(outDir, state);
    // whatever a stopped tool or stream failed with, an aborted build says it was cancelled
    throw signal.aborted ? cancellationError(signal) : e;
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}
