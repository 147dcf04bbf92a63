/**
 * `aim rollout`: update → qualify → promote, rolled back by itself when qualification fails.
 *
 *   1. update: the next version of the image with the update's packages (updateImage), the
 *      candidate being its slim image (else its gold);
 *   2. prepare the qualification (build the candidate's artifact): a candidate that cannot even
 *      be built is rejected here and the channel never moves;
 *   3. promote the candidate into the channel, state `qualifying`: what follows the channel (PXE
 *      assignments, AMI pointers) follows it, so what is qualified is what the channel serves;
 *   4. qualify (boot the artifact, run the profile's probes);
 *   5. passed: the channel keeps the candidate (`qualified` in its history); failed, or stopped
 *      for any reason: the channel, its PXE assignments and AMI pointers roll back to the last
 *      good version by themselves, and the history says why (the failed probe and its answer).
 *
 * The qualifier comes from the CLI (it boots QEMU, above core); the update can be injected too.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { AimError, ConfigError, ExitCode, isAimError } from '../../lib/errors.js';
import type { Reporter } from '../../lib/reporter.js';
import type { ChannelHistoryEntry, QualificationRecord } from '../model/channel.js';
import { resolveImage } from '../query/resolve.js';
import type { Repository } from '../repository/repository.js';
import type { SlimReport } from '../slim/compose.js';
import { badImages, effectiveState, getChannel, lastGoodVersion, moveChannel, rollbackChannel, checkChannel } from './channels.js';
import { updateImage, type UpdateRequest, type UpdateResult } from './update-image.js';

export interface RolloutRequest {
  /** The image to update (gold or slim, name:tag or id). */
  name: string;
  /** .debs, folders of them, Packages indexes (as aim update --with). */
  with: string[];
  /** Default: the one channel that holds `name` or an image made from it. */
  channel?: string;
  acceptScripts?: boolean;
  reprofile?: boolean;
  /** Also build the artifacts the previous version was built as, into this directory (aim update --out). */
  out?: string;
  signal?: AbortSignal;
}

/** A qualification ready to boot: built, not yet run. */
export interface PreparedQualifier {
  /** Boots and probes; resolves with a passed record, rejects with an AimError whose `result` is the failed record (or any other error). */
  run(signal?: AbortSignal): Promise<QualificationRecord>;
  dispose(): Promise<void>;
}

export interface RolloutDeps {
  /** Prepares the qualification of an image (builds the artifact the channel ships); rejects as run() does. */
  prepareQualification(image: { id: string; ref: string; channel: string }, signal?: AbortSignal): Promise<PreparedQualifier>;
  update?(req: UpdateRequest): Promise<UpdateResult>;
}

export type RolloutOutcome = 'promoted' | 'rolled-back' | 'rejected' | 'unchanged' | 'rollback-failed';

export interface RolloutReport {
  id: string;
  channel: string;
  outcome: RolloutOutcome;
  /** What the channel held when the rollout started. */
  previous: { id: string; ref: string };
  candidate?: { id: string; ref: string };
  /** What the channel holds now. */
  current: { id: string; ref: string };
  update?: UpdateResult;
  qualification?: QualificationRecord;
  /** Why it did not end promoted. */
  reason?: string;
  /** The history entries this rollout wrote. */
  history: ChannelHistoryEntry[];
  timings: { updateMs: number; prepareMs?: number; qualifyMs?: number; totalMs: number };
}

/** The failed qualification an error carries as its result, if any. */
export function qualificationOf(e: unknown): QualificationRecord | undefined {
  const r = isAimError(e) ? (e.result as Partial<QualificationRecord> | undefined) : undefined;
  return r && typeof r.id === 'string' && typeof r.passed === 'boolean' && typeof r.imageId === 'string' ? (r as QualificationRecord) : undefined;
}

const firstLine = (e: unknown) => (e instanceof Error ? e.message : String(e)).split('\n')[0]!;

/** The channel a rollout of `imageId` goes to when none is named: the one that holds it or an image made from it. */
export async function rolloutChannel(repo: Repository, imageId: string): Promise<string> {
  const goldOf = async (id: string) => ((await repo.catalog.getSlimReport(id)) as Partial<SlimReport> | undefined)?.gold?.id ?? id;
  const base = await goldOf(imageId);
  const holding: string[] = [];
  for (const c of await repo.catalog.channels.list()) if (c.imageId === imageId || (await goldOf(c.imageId)) === base) holding.push(c.name);
  if (holding.length === 1) return holding[0]!;
  throw new ConfigError(
    holding.length === 0 ? `no channel holds ${imageId.slice(0, 12)} or an image made from its gold` : `channels ${holding.join(', ')} hold versions of ${imageId.slice(0, 12)}`,
    { hint: holding.length === 0 ? 'promote the current version first (aim channel promote <image> <channel>), then roll out with --to <channel>' : 'say which with --to <channel>' },
  );
}

/** Runs a rollout (see the file's comment). Rejects with E_ROLLED_BACK or E_ROLLOUT_REJECTED (the report as result) when the candidate failed. */
export async function runRollout(repo: Repository, req: RolloutRequest, deps: RolloutDeps, reporter: Reporter): Promise<RolloutReport> {
  const t0 = Date.now();
  const id = randomBytes(6).toString('hex');
  const nameId = await resolveImage(repo, req.name);
  const channelName = req.channel === undefined ? await rolloutChannel(repo, nameId) : checkChannel(req.channel);
  const before = await getChannel(repo, channelName);
  const state = effectiveState(before);
  if (state !== 'ready') {
    throw new AimError('E_BUSY', `channel ${channelName} is ${state} (rollout ${before.rollout?.id})`, ExitCode.busy, {
      hint: state === 'qualifying' ? 'wait for that rollout to finish' : `it was left by a killed rollout: aim channel rollback ${channelName}, or promote by hand`,
    });
  }
  // a rollout needs a good version to fall back to: the channel's own, or an earlier one
  const history = await repo.catalog.channels.history(channelName);
  const latest = await repo.catalog.channels.latestQualifications([before.imageId, ...history.map((e) => e.imageId)]);
  if (badImages(history, latest).has(before.imageId)) {
    const ids = new Set((await repo.catalog.listImages()).map((i) => i.id));
    if (!lastGoodVersion(history, before.imageId, latest, (i) => ids.has(i))) {
      throw new AimError('E_NO_GOOD_VERSION', `channel ${channelName} holds ${before.imageRef}, which is not good (its latest qualification failed), and no earlier good version to fall back to`, ExitCode.notFound, {
        hint: `qualify and promote a good version first: aim qualify <image>, aim channel promote <image> ${channelName}`,
      });
    }
  }
  const previous = { id: before.imageId, ref: before.imageRef };
  const report: RolloutReport = { id, channel: channelName, outcome: 'unchanged', previous, current: previous, history: [], timings: { updateMs: 0, totalMs: 0 } };
  const done = (outcome: RolloutOutcome): RolloutReport => ({ ...report, outcome, timings: { ...report.timings, totalMs: Date.now() - t0 } });

  reporter.emit({ type: 'stage', stage: 'rollout', status: 'start', detail: `${id}: ${req.name} with ${req.with.join(', ')} → channel ${channelName} (holds ${before.imageRef})` });
  const update = deps.update ?? ((r: UpdateRequest) => updateImage(repo, r, reporter));
  const u = await update({
    image: req.name,
    with: req.with,
    ...(req.acceptScripts ? { acceptScripts: true } : {}),
    ...(req.reprofile ? { reprofile: true } : {}),
    ...(req.out !== undefined ? { artifacts: { outDir: req.out } } : {}),
    ...(req.signal ? { signal: req.signal } : {}),
  });
  report.update = u;
  report.timings.updateMs = Date.now() - t0;
  const made = u.slim ?? u.gold;
  const candidate = { id: made.id, ref: made.ref };
  report.candidate = candidate;
  if (candidate.id === before.imageId) {
    report.reason = `the update leaves ${before.imageRef} as it is`;
    return done('unchanged');
  }

  const t1 = Date.now();
  let prepared: PreparedQualifier;
  try {
    prepared = await deps.prepareQualification({ ...candidate, channel: channelName }, req.signal);
  } catch (e) {
    const q = qualificationOf(e);
    if (!q) throw e;
    report.qualification = q;
    report.reason = `the candidate ${candidate.ref} failed before the channel moved: ${firstLine(e)}`;
    report.timings.prepareMs = Date.now() - t1;
    throw new AimError('E_ROLLOUT_REJECTED', `rollout ${id}: ${report.reason}`, ExitCode.verifyFailed, { result: done('rejected'), cause: e, hint: `channel ${channelName} still holds ${before.imageRef}; see the qualification in the result` });
  }
  report.timings.prepareMs = Date.now() - t1;

  try {
    const promoted = await moveChannel(
      repo,
      {
        channel: channelName,
        action: 'promote',
        imageId: candidate.id,
        imageRef: candidate.ref,
        state: 'qualifying',
        rollout: { id, pid: process.pid, host: hostname() },
        reason: `${req.name} updated (${u.packages.map((p) => `${p.name} ${p.from} → ${p.to}`).join(', ') || req.with.join(', ')}); qualifying`,
        expect: { imageId: before.imageId },
      },
      reporter,
    );
    report.history.push(promoted.entry);
    report.current = candidate;
    reporter.emit({ type: 'info', message: `channel ${channelName} → ${candidate.ref} (qualifying); ${promoted.entry.effects.pxe.length} PXE assignment(s) and ${promoted.entry.effects.amis.length} AMI pointer(s) followed` });

    const t2 = Date.now();
    let failure: unknown;
    try {
      report.qualification = await prepared.run(req.signal);
    } catch (e) {
      failure = e;
      report.qualification = qualificationOf(e);
    }
    report.timings.qualifyMs = Date.now() - t2;

    if (failure === undefined) {
      const q = report.qualification!;
      const kept = await moveChannel(
        repo,
        { channel: channelName, action: 'qualified', imageId: candidate.id, imageRef: candidate.ref, state: 'ready', rolloutId: id, qualification: q.id, reason: `qualification ${q.id} passed`, expect: { imageId: candidate.id, state: 'qualifying', rollout: id } },
        reporter,
      );
      report.history.push(kept.entry);
      reporter.emit({ type: 'stage', stage: 'rollout', status: 'done', detail: `${candidate.ref} qualified and kept in ${channelName}` });
      return done('promoted');
    }

    const q = report.qualification;
    report.reason = q ? `qualification ${q.id} of ${candidate.ref} failed: ${q.error?.message.split('\n')[0] ?? firstLine(failure)}` : `${candidate.ref} could not be qualified: ${firstLine(failure)}`;
    const back = await rollbackChannel(repo, { channel: channelName, reason: report.reason, ...(q ? { qualification: q.id } : {}), rollout: { id, candidate: candidate.id } }, reporter).catch((e: unknown) => {
      throw new AimError('E_ROLLBACK_FAILED', `rollout ${id}: ${report.reason}; and the rollback of channel ${channelName} failed: ${firstLine(e)}`, isAimError(e) ? e.exitCode : ExitCode.internal, {
        result: done('rollback-failed'),
        cause: e,
        hint: `channel ${channelName} still serves the candidate ${candidate.ref}: roll it back by hand (aim channel rollback ${channelName}) or promote a good version`,
      });
    });
    report.history.push(back.entry);
    report.current = { id: back.channel.imageId, ref: back.channel.imageRef };
    reporter.emit({ type: 'warn', code: 'W_ROLLED_BACK', message: `channel ${channelName} rolled back to ${back.channel.imageRef}: ${report.reason}` });
    // stopped by the user: the rollback is done, the command still ends as interrupted
    if (req.signal?.aborted && !q) throw failure;
    throw new AimError('E_ROLLED_BACK', `rollout ${id}: ${report.reason}; channel ${channelName} rolled back to ${back.channel.imageRef}`, ExitCode.verifyFailed, {
      result: done('rolled-back'),
      cause: failure,
      hint: `the history says what moved: aim channel history ${channelName}; the qualification's probes and the guest console are in the result`,
    });
  } finally {
    await prepared.dispose();
  }
}
