import { AimError, ExitCode, NotFoundError } from '../../lib/errors.js';
import type { AimEvent, Reporter } from '../../lib/reporter.js';
import { probeExpectation, probeLabel, type ProbeResult, type ProbeSpec } from '../profile/probes.js';
import { profileUnits, traceImage } from '../profile/profile-run.js';
import type { SandboxResult } from '../profile/sandbox.js';
import type { Repository } from '../repository/repository.js';
import { treesKept } from '../repository/tree-cache.js';
import type { SlimReport } from './compose.js';

/** What is compared of one probe try: status or exit and the body or output hash, or why there was no answer. */
export interface Outcome {
  status?: number;
  exitCode?: number;
  sha256?: string;
  error?: string;
  /** Met the probe's expectation. */
  met: boolean;
}

/**
 * same: gold answered the same every time and slim answered exactly that every time.
 * different: slim answered otherwise, or missed an expectation gold always met.
 * flaky: gold itself did not answer the same every time, so no comparison proves anything.
 */
export type ProbeVerdict = 'same' | 'different' | 'flaky';

export interface ProbeComparison {
  probe: string;
  expectation: string;
  verdict: ProbeVerdict;
  /** verdict === 'same'. */
  same: boolean;
  /** Why the verdict, in words. */
  why: string;
  /** One outcome per round, in order. */
  gold: Outcome[];
  slim: Outcome[];
}

export interface VerifyReport {
  /** No probe differs, and none is flaky unless flaky probes were allowed. */
  ok: boolean;
  slim: string;
  gold: string;
  profile: string;
  /** Rounds of probes in each image. */
  repeat: number;
  probes: ProbeComparison[];
  /** Time to ready and probe tries of each run. */
  ready: { gold?: SandboxResult['ready']; slim?: SandboxResult['ready'] };
  /** Paths the slim run looked for in vain that the gold run found: what the slim image lacks. */
  missing: { path: string; syscalls: string[]; errors: string[] }[];
}

export interface VerifyRequest {
  slimId: string;
  goldId: string;
  profile: string;
  /** Rounds of probes in each image; default 3. */
  repeat?: number;
  /** Flaky probes do not fail the verification: slim must only meet their expectation every time. */
  allowFlaky?: boolean;
  /** Default: as profiled. */
  probeTimeoutMs?: number;
  readyTimeoutMs?: number;
}

export const DEFAULT_REPEAT = 3;

export function outcomeOf(r: ProbeResult): Outcome {
  const answer = r.kind === 'http' ? { status: r.status } : { exitCode: r.exitCode };
  return { ...answer, sha256: r.sha256, error: r.error, met: r.met };
}

const key = (o: Outcome) => JSON.stringify([o.status, o.exitCode, o.sha256, o.error]);

function describeOutcome(o: Outcome): string {
  if (o.error !== undefined) return `no answer (${o.error})`;
  const what = o.status !== undefined ? `HTTP ${o.status}` : `exit ${o.exitCode}`;
  return `${what} ${o.sha256?.slice(0, 12) ?? ''}`.trimEnd();
}

/** "HTTP 200 1a2b3c4d5e6f ×3" or "HTTP 200 1a2b… ×2, HTTP 500 9f8e… ×1". */
export function summarizeOutcomes(outcomes: readonly Outcome[]): string {
  const counts = new Map<string, { o: Outcome; n: number }>();
  for (const o of outcomes) {
    const c = counts.get(key(o));
    if (c) c.n++;
    else counts.set(key(o), { o, n: 1 });
  }
  return [...counts.values()].map(({ o, n }) => `${describeOutcome(o)} ×${n}`).join(', ');
}

/** Pure: the verdict on one probe from its gold and slim rounds (gold's first round met its expectation). */
export function compareProbe(probe: ProbeSpec, gold: readonly ProbeResult[], slim: readonly ProbeResult[]): ProbeComparison {
  const g = gold.map(outcomeOf);
  const s = slim.map(outcomeOf);
  const base = { probe: probeLabel(probe), expectation: probeExpectation(probe), gold: g, slim: s };
  const goldVaries = new Set(g.map(key)).size > 1;
  const missed = s.filter((o) => !o.met).length;
  let verdict: ProbeVerdict;
  let why: string;
  if (!goldVaries) {
    const off = s.filter((o) => key(o) !== key(g[0]!)).length;
    verdict = off === 0 ? 'same' : 'different';
    why = off === 0 ? `gold and slim: ${summarizeOutcomes(g)}` : `gold: ${summarizeOutcomes(g)}; slim: ${summarizeOutcomes(s)}`;
  } else if (g.every((o) => o.met) && missed > 0) {
    verdict = 'different';
    why = `gold varies but always met ${base.expectation}; slim missed it ${missed} of ${s.length} times: ${summarizeOutcomes(s)}`;
  } else {
    verdict = 'flaky';
    why = `gold varies: ${summarizeOutcomes(g)}; slim: ${summarizeOutcomes(s)}`;
  }
  return { ...base, verdict, same: verdict === 'same', why };
}

/** The failure a report stands for, or undefined when it verifies (carries the report as the partial result). */
export function verifyFailure(report: VerifyReport, allowFlaky = false): AimError | undefined {
  const different = report.probes.filter((p) => p.verdict === 'different');
  const flaky = report.probes.filter((p) => p.verdict === 'flaky');
  if (different.length > 0) {
    return new AimError('E_VERIFY_FAILED', `${different.length} probe(s) differ between slim and gold: ${different.map((p) => p.probe).join(', ')}`, ExitCode.verifyFailed, {
      hint: report.missing.length ? 'keep the missing paths with aim slim --keep GLOB, or profile more of the workload' : 'profile more of the workload',
      result: report,
    });
  }
  if (flaky.length > 0 && !allowFlaky) {
    return new AimError('E_VERIFY_FLAKY', `${flaky.length} probe(s) answer differently from one try to the next in the gold image itself, so slim cannot be compared on them: ${flaky.map((p) => p.probe).join(', ')}`, ExitCode.verifyFailed, {
      hint: 'probe something stable (or give it an expectation such as bodyContains and use --allow-flaky, which then checks slim against the expectation only)',
      result: report,
    });
  }
  return undefined;
}

/** Both results once both have settled; the first promise's failure wins over the second's. */
async function inOrderOfBlame<A, B>(first: Promise<A>, second: Promise<B>): Promise<[A, B]> {
  const [a, b] = await Promise.allSettled([first, second]);
  if (a.status === 'rejected') throw a.reason;
  if (b.status === 'rejected') throw b.reason;
  return [a.value, b.value];
}

/** One side's events (the gold or the slim run), named: both runs report at the same time. */
function sideReporter(reporter: Reporter, side: 'gold' | 'slim'): Reporter {
  const named = (e: AimEvent): AimEvent => {
    if (e.type === 'info' || e.type === 'warn') return { ...e, message: `${side}: ${e.message}` };
    if (e.type === 'stage' && e.detail !== undefined) return { ...e, detail: `${side}: ${e.detail}` };
    return e;
  };
  return { emit: (e) => reporter.emit(named(e)) };
}

/** What a slim image records about how it was made: its gold image and profile. */
export async function slimOrigin(repo: Repository, slimId: string): Promise<{ gold?: string; profile?: string }> {
  const report = (await repo.catalog.getSlimReport(slimId)) as Partial<SlimReport> | undefined;
  return { gold: report?.gold?.id, profile: report?.profile };
}

/**
 * Re-runs the profile's workload and probes in the gold and in the slim image, `repeat` rounds
 * each (the first waits until each probe meets its expectation), and compares every probe (HTTP
 * status and body hash, exit status and output hash). A gold probe that never meets its
 * expectation fails with ProbeFailedError; the report names the paths the slim run could not
 * find but the gold run could.
 */
export async function verifySlim(repo: Repository, req: VerifyRequest, reporter: Reporter): Promise<VerifyReport> {
  const profile = await repo.catalog.getProfile(req.profile);
  if (!profile) throw new NotFoundError(`no profile "${req.profile}"`, { hint: 'list profiles with: aim profile list' });
  // The last run's command and readiness, with the probes of every run (each once).
  const last = profile.runs[profile.runs.length - 1]!;
  const specs = [...new Map(profile.runs.flatMap((r) => r.probes).map((p) => [JSON.stringify(p), p] as const)).values()];
  const repeat = req.repeat ?? DEFAULT_REPEAT;
  const base = {
    run: last.command,
    probes: specs,
    readyPort: last.readyPort,
    readyLog: last.readyLog,
    readyTimeoutMs: req.readyTimeoutMs ?? last.readyTimeoutMs,
    durationMs: last.durationMs,
    probeTimeoutMs: req.probeTimeoutMs ?? last.probeTimeoutMs,
    repeat,
    units: profileUnits(profile),
  };
  // Gold and slim side by side (each in its own namespaces and overlay): verify takes as long as
  // the longer run, not both. A gold run that fails decides the outcome whatever slim did, as it
  // did when gold ran first; only then does a failure of the slim run count.
  const goldRun = () => traceImage(repo, req.goldId, 'verify-gold', { ...base, where: 'in the gold image' }, sideReporter(reporter, 'gold'));
  const slimRun = () =>
    traceImage(repo, req.slimId, 'verify-slim', { ...base, onUnmet: 'record', where: 'in the slim image' }, sideReporter(reporter, 'slim')).catch((e: unknown) => {
      if (e instanceof AimError) {
        throw new AimError('E_VERIFY_FAILED', `the slim image does not run the workload: ${e.message}`, ExitCode.verifyFailed, { cause: e, hint: e.hint });
      }
      throw e;
    });
  // with one cached tree at most (or none), either run's tree could go while the other mounts it
  const [gold, slim] = treesKept() >= 2 ? await inOrderOfBlame(goldRun(), slimRun()) : [await goldRun(), await slimRun()];
  const byProbe = (rounds: ProbeResult[][], i: number) => rounds.map((round) => round[i]!);
  const probes = specs.map((spec, i) => compareProbe(spec, byProbe(gold.probeRounds, i), byProbe(slim.probeRounds, i)));
  const missing = [...slim.trace.paths.values()]
    .filter((p) => !p.ok && gold.trace.paths.get(p.path)?.ok)
    .map((p) => ({ path: p.path, syscalls: [...p.syscalls], errors: [...p.errors] }));
  const report: VerifyReport = {
    ok: false,
    slim: req.slimId,
    gold: req.goldId,
    profile: req.profile,
    repeat,
    probes,
    ready: { gold: gold.ready, slim: slim.ready },
    missing,
  };
  report.ok = verifyFailure(report, req.allowFlaky) === undefined;
  return report;
}
