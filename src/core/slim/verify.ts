import { AimError, ExitCode, NotFoundError } from '../../lib/errors.js';
import type { Reporter } from '../../lib/reporter.js';
import type { ProbeResult } from '../profile/probes.js';
import { profileUnits, traceImage } from '../profile/profile-run.js';
import type { Repository } from '../repository/repository.js';

export interface ProbeComparison {
  probe: string;
  gold: { status?: number; exitCode?: number; sha256: string };
  slim: { status?: number; exitCode?: number; sha256: string };
  same: boolean;
}

export interface VerifyReport {
  ok: boolean;
  slim: string;
  gold: string;
  profile: string;
  probes: ProbeComparison[];
  /** Paths the slim run looked for in vain that the gold run found: what the slim image lacks. */
  missing: { path: string; syscalls: string[]; errors: string[] }[];
}

const outcome = (r: ProbeResult) => (r.kind === 'http' ? { status: r.status, sha256: r.sha256 } : { exitCode: r.exitCode, sha256: r.sha256 });
const label = (r: ProbeResult) => (r.kind === 'http' ? r.url : `exec: ${r.command}`);

/**
 * Re-runs the profile's workload and probes in the gold and in the slim image and compares every
 * probe (HTTP status and body hash, exit status and output hash). A difference fails with the
 * paths the slim run could not find but the gold run could.
 */
export async function verifySlim(
  repo: Repository,
  slimId: string,
  goldId: string,
  profileName: string,
  reporter: Reporter,
  options: { probeTimeoutMs?: number } = {},
): Promise<VerifyReport> {
  const profile = await repo.catalog.getProfile(profileName);
  if (!profile) throw new NotFoundError(`no profile "${profileName}"`, { hint: 'list profiles with: aim profile list' });
  // The last run's command and readiness, with the probes of every run (each once).
  const last = profile.runs[profile.runs.length - 1]!;
  const specs = [...new Map(profile.runs.flatMap((r) => r.probes).map((p) => [JSON.stringify(p), p] as const)).values()];
  const req = { run: last.command, probes: specs, readyPort: last.readyPort, durationMs: last.durationMs, probeTimeoutMs: options.probeTimeoutMs ?? last.probeTimeoutMs, units: profileUnits(profile) };
  const gold = await traceImage(repo, goldId, 'verify-gold', req, reporter);
  const slim = await traceImage(repo, slimId, 'verify-slim', req, reporter).catch((e: unknown) => {
    if (e instanceof AimError) {
      throw new AimError('E_VERIFY_FAILED', `the slim image does not run the workload: ${e.message}`, ExitCode.verifyFailed, { cause: e });
    }
    throw e;
  });
  const probes = gold.probes.map((g, i) => {
    const s = slim.probes[i]!;
    const comparison = { probe: label(g), gold: outcome(g), slim: outcome(s) };
    return { ...comparison, same: JSON.stringify(comparison.gold) === JSON.stringify(comparison.slim) };
  });
  const missing = [...slim.trace.paths.values()]
    .filter((p) => !p.ok && gold.trace.paths.get(p.path)?.ok)
    .map((p) => ({ path: p.path, syscalls: [...p.syscalls], errors: [...p.errors] }));
  const report: VerifyReport = { ok: probes.every((p) => p.same), slim: slimId, gold: goldId, profile: profileName, probes, missing };
  return report;
}
