import type { Reporter } from '../../lib/reporter.js';
import type { Repository } from '../repository/repository.js';
import { planImageRuntime, type RuntimeRequest } from './image-source.js';
import { describeOrigin, type RuntimeAction } from './plan.js';

/** The runtime state a slim image records: what its init and the sandbox create before the workload starts. */
export interface RecordedRuntime {
  actions: RuntimeAction[];
  /** Units whose directories are among the actions. */
  units: string[];
  /** tmpfiles.d files the slim image keeps (their lines are among the actions). */
  tmpfiles: string[];
}

export interface ImageRuntime extends RecordedRuntime {
  /** "recorded": the slim image's own plan; "image": planned from the image's files. */
  source: 'recorded' | 'image';
  /** Units found from the workload's programs rather than named. */
  detected: boolean;
}

/** The runtime state recorded with a slim image, if any. */
export async function readRecordedRuntime(repo: Repository, imageId: string): Promise<{ slim: boolean; runtime?: RecordedRuntime }> {
  const report = (await repo.catalog.getSlimReport(imageId)) as { runtime?: RecordedRuntime } | undefined;
  if (!report) return { slim: false };
  const r = report.runtime;
  return r && Array.isArray(r.actions) ? { slim: true, runtime: r } : { slim: true };
}

/**
 * The runtime state to create before an image's workload starts: a slim image's recorded plan;
 * otherwise planned from the image's tmpfiles.d and the workload's units (named, or found from
 * its command). A slim image without a recorded plan gets its tmpfiles.d only (its units are gone).
 * Lines aim does not apply are reported as warnings.
 */
export async function runtimeForImage(repo: Repository, imageId: string, req: RuntimeRequest, reporter: Reporter): Promise<ImageRuntime> {
  const recorded = await readRecordedRuntime(repo, imageId);
  if (recorded.runtime) return { ...recorded.runtime, source: 'recorded', detected: false };
  const entries = new Map((await repo.catalog.entries(imageId)).map((e) => [e.path, e] as const));
  const plan = await planImageRuntime({ entries, readBlob: (b) => repo.blobs.read(b) }, recorded.slim ? { units: [] } : req);
  for (const p of plan.problems) reporter.emit({ type: 'warn', code: 'W_RUNTIME_STATE', message: `${p.file}:${p.line}: ${p.message} (line ignored)`, path: p.file });
  for (const s of plan.skipped) {
    if (s.warn) reporter.emit({ type: 'warn', code: 'W_RUNTIME_STATE', message: `${describeOrigin(s.origin)}: ${s.reason}` });
  }
  if (plan.units.length > 0) reporter.emit({ type: 'info', message: `runtime state of ${plan.units.join(', ')}${plan.detected ? ' (found by the workload\'s program)' : ''}` });
  return { actions: plan.actions, units: plan.units, tmpfiles: plan.tmpfiles, source: 'image', detected: plan.detected };
}
