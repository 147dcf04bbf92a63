/**
 * Channels: named pointers at images (dev, qual, prod: the user's names) that providers follow.
 * Moving a channel (promote, rollback) is planned first (which image, the boot of every PXE
 * assignment that follows the channel, the AMI of the image in each region), then written as one
 * catalog transaction with its history entry; a plan overtaken by another process is made again.
 */
import { hostname, userInfo } from 'node:os';
import { AimError, BusyError, ExitCode, NotFoundError } from '../../lib/errors.js';
import type { Reporter } from '../../lib/reporter.js';
import type { Actor, ChannelHistoryEntry, ChannelRecord, ChannelState } from '../model/channel.js';
import { assignmentBootFor, checkChannel, planAssignmentBoot } from '../pxe/assignments.js';
import { resolveImage } from '../query/resolve.js';
import { ChannelConflict, type ChannelMove, type PxeSwitch } from '../repository/catalog-channels.js';
import { lastGoodVersion } from '../repository/holds.js';
import { isProcessAlive } from '../../lib/file-mutex.js';
import type { Repository } from '../repository/repository.js';

export { checkChannel };
export { badImages, lastGoodVersion } from '../repository/holds.js';

/** This process, as the author of a change. */
export function currentActor(): Actor {
  let user = process.env.SUDO_USER || process.env.USER || '';
  if (!user) {
    try {
      user = userInfo().username;
    } catch {
      user = String(process.getuid?.() ?? 'unknown');
    }
  }
  return { user, host: hostname(), pid: process.pid };
}

/** A channel as shown: a rollout killed while qualifying shows as interrupted. */
export function effectiveState(c: ChannelRecord): ChannelState {
  if (c.state !== 'qualifying') return c.state;
  const owner = c.rollout;
  return owner && (owner.host !== hostname() || isProcessAlive(owner.pid)) ? 'qualifying' : 'interrupted';
}

/** A channel as `aim channel list` shows it: its state as seen now, and whether its image is gone. */
export type ChannelView = ChannelRecord & { imageMissing?: true; qualification?: { id: string; passed: boolean; finishedAt: string } };

export async function listChannels(repo: Repository): Promise<ChannelView[]> {
  const channels = await repo.catalog.channels.list();
  const latest = await repo.catalog.channels.latestQualifications(channels.map((c) => c.imageId));
  const out: ChannelView[] = [];
  for (const c of channels) {
    const q = latest.get(c.imageId);
    out.push({
      ...c,
      state: effectiveState(c),
      ...((await repo.catalog.getImage(c.imageId)) ? {} : { imageMissing: true as const }),
      ...(q ? { qualification: { id: q.id, passed: q.passed, finishedAt: q.finishedAt } } : {}),
    });
  }
  return out;
}

export async function getChannel(repo: Repository, name: string): Promise<ChannelRecord> {
  const c = await repo.catalog.channels.get(checkChannel(name));
  if (!c) throw new NotFoundError(`no channel "${name}"`, { hint: `promote an image into it first: aim channel promote <image> ${name}` });
  return c;
}

export async function channelHistory(repo: Repository, name: string, limit?: number): Promise<ChannelHistoryEntry[]> {
  await getChannel(repo, name);
  return repo.catalog.channels.history(name, limit);
}

/** The AMI of an image in each region, from its live publications (aim ship aws): newest per region. */
export async function amiPointersOf(repo: Repository, imageId: string): Promise<ChannelMove['amis']> {
  const byRegion = new Map<string, { amiId: string; publication: string; at: string }>();
  for (const p of await repo.catalog.publications.list()) {
    if (p.imageId !== imageId || p.state !== 'published') continue;
    for (const item of p.published) {
      const r = item as { kind?: unknown; id?: unknown; location?: unknown };
      if (r.kind !== 'ami' || typeof r.id !== 'string' || typeof r.location !== 'string') continue;
      const was = byRegion.get(r.location);
      if (!was || was.at <= p.updatedAt) byRegion.set(r.location, { amiId: r.id, publication: p.id, at: p.updatedAt });
    }
  }
  return [...byRegion].sort(([a], [b]) => (a < b ? -1 : 1)).map(([region, v]) => ({ region, amiId: v.amiId, imageId, publication: v.publication }));
}

/** Every PXE assignment that follows the channel, with its boot planned for `imageId`. */
async function planFollowers(repo: Repository, channel: string, imageId: string, imageRef: string, reporter: Reporter): Promise<PxeSwitch[]> {
  const out: PxeSwitch[] = [];
  for (const a of await repo.catalog.pxe.assignments()) {
    if (a.channel !== channel) continue;
    const boot =
      a.imageId === imageId
        ? a.boot
        : await planAssignmentBoot(repo, imageId, assignmentBootFor(a, imageId), reporter).catch((e: unknown) => {
            throw e instanceof AimError
              ? new AimError(e.code, `PXE assignment ${a.selector.key} follows channel ${channel}, but ${imageId.slice(0, 12)} cannot boot there: ${e.message}`, e.exitCode, { hint: e.hint, cause: e })
              : e;
          });
    out.push({ selector: a.selector.key, from: a.imageId, imageId, imageRef: a.imageId === imageId ? a.imageRef : imageRef, boot });
  }
  return out;
}

export interface MoveRequest {
  channel: string;
  action: ChannelMove['action'];
  imageId: string;
  imageRef: string;
  state: 'ready' | 'qualifying';
  rollout?: ChannelMove['rollout'];
  rolloutId?: string;
  reason?: string;
  qualification?: string;
  /** What the channel must hold for the move to happen; default: whatever it holds when planned. */
  expect?: Partial<ChannelMove['expect']>;
}

const MAX_PLANS = 5;

/** Plans a move against the catalog as it is and writes it; plans again when another process overtook it. */
export async function moveChannel(repo: Repository, req: MoveRequest, reporter: Reporter): Promise<{ channel: ChannelRecord; entry: ChannelHistoryEntry }> {
  for (let attempt = 1; ; attempt++) {
    const current = await repo.catalog.channels.get(req.channel);
    if (req.expect?.imageId !== undefined && (current?.imageId ?? null) !== req.expect.imageId) {
      throw new AimError('E_CHANNEL_CONFLICT', `channel ${req.channel} moved meanwhile: it holds ${current?.imageRef ?? 'nothing'} (${current?.imageId.slice(0, 12) ?? '-'})`, ExitCode.busy, {
        hint: `see what happened: aim channel history ${req.channel}`,
      });
    }
    const move: ChannelMove = {
      channel: req.channel,
      action: req.action,
      imageId: req.imageId,
      imageRef: req.imageRef,
      expect: { imageId: current?.imageId ?? null, ...(req.expect?.state ? { state: req.expect.state } : {}), ...(req.expect?.rollout ? { rollout: req.expect.rollout } : {}) },
      state: req.state,
      ...(req.rollout ? { rollout: req.rollout } : {}),
      ...(req.rolloutId !== undefined ? { rolloutId: req.rolloutId } : {}),
      ...(req.reason !== undefined ? { reason: req.reason } : {}),
      ...(req.qualification !== undefined ? { qualification: req.qualification } : {}),
      pxe: await planFollowers(repo, req.channel, req.imageId, req.imageRef, reporter),
      amis: await amiPointersOf(repo, req.imageId),
      by: currentActor(),
    };
    try {
      return await repo.catalog.channels.move(move);
    } catch (e) {
      if (!(e instanceof ChannelConflict)) throw e;
      if (attempt >= MAX_PLANS || req.expect?.state !== undefined || req.expect?.rollout !== undefined) {
        throw new AimError('E_CHANNEL_CONFLICT', `channel ${req.channel}: ${e.message}`, ExitCode.busy, { hint: `see what happened: aim channel history ${req.channel}; then try again` });
      }
    }
  }
}

/** A qualifying rollout that still runs holds its channel. */
function refuseIfBusy(c: ChannelRecord | undefined): void {
  if (c && effectiveState(c) === 'qualifying') {
    throw new BusyError(`channel ${c.name} is qualifying ${c.imageRef} in rollout ${c.rollout?.id} (pid ${c.rollout?.pid} on ${c.rollout?.host})`, {
      hint: `wait for the rollout to finish, or roll it back now: aim channel rollback ${c.name}`,
    });
  }
}

export interface PromoteRequest {
  image: string;
  channel: string;
  reason?: string;
  /** Refuse an image whose latest qualification did not pass (or that has none). */
  requireQualified?: boolean;
}

export interface PromoteResult {
  channel: ChannelRecord;
  /** Absent when the channel already held the image and nothing followed. */
  entry?: ChannelHistoryEntry;
}

/** Points a channel at an image (creating the channel), and with it what follows the channel. */
export async function promoteImage(repo: Repository, req: PromoteRequest, reporter: Reporter): Promise<PromoteResult> {
  const channel = checkChannel(req.channel);
  const imageId = await resolveImage(repo, req.image);
  if (req.requireQualified) {
    const q = (await repo.catalog.channels.latestQualifications([imageId])).get(imageId);
    if (!q?.passed) {
      throw new AimError('E_NOT_QUALIFIED', `${req.image} ${q ? `failed its latest qualification (${q.id}: ${q.error?.message.split('\n')[0] ?? 'failed'})` : 'was never qualified'}`, ExitCode.verifyFailed, {
        hint: `qualify it first: aim qualify ${req.image}`,
      });
    }
  }
  const current = await repo.catalog.channels.get(channel);
  refuseIfBusy(current);
  if (current?.imageId === imageId && current.state === 'ready') {
    const followers = await planFollowers(repo, channel, imageId, req.image, reporter);
    const amis = await amiPointersOf(repo, imageId);
    const same = followers.every((f) => f.from === imageId) && JSON.stringify(amis.map((a) => [a.region, a.amiId])) === JSON.stringify(current.amis.map((a) => [a.region, a.amiId]));
    if (same) return { channel: current };
  }
  return moveChannel(repo, { channel, action: 'promote', imageId, imageRef: req.image, state: 'ready', ...(req.reason !== undefined ? { reason: req.reason } : {}) }, reporter);
}

export interface RollbackRequest {
  channel: string;
  reason?: string;
  qualification?: string;
  /** A rollout rolling back its own candidate: the channel must still be its. */
  rollout?: { id: string; candidate: string };
}

/**
 * Moves a channel back to its last good version (lastGoodVersion), and with it what follows the
 * channel; the image it leaves is bad for the channel from now on (until promoted again by hand).
 */
export async function rollbackChannel(repo: Repository, req: RollbackRequest, reporter: Reporter): Promise<{ channel: ChannelRecord; entry: ChannelHistoryEntry }> {
  const current = await getChannel(repo, req.channel);
  const history = await repo.catalog.channels.history(current.name);
  const latest = await repo.catalog.channels.latestQualifications(history.map((e) => e.imageId));
  const ids = new Set((await repo.catalog.listImages()).map((i) => i.id));
  const target = lastGoodVersion(history, current.imageId, latest, (id) => ids.has(id));
  if (!target) {
    throw new AimError('E_NO_GOOD_VERSION', `channel ${current.name} has no earlier good version to go back to (it holds ${current.imageRef})`, ExitCode.notFound, {
      hint: `promote a version by hand: aim channel promote <image> ${current.name}`,
    });
  }
  return moveChannel(
    repo,
    {
      channel: current.name,
      action: 'rollback',
      imageId: target.imageId,
      imageRef: target.imageRef,
      state: 'ready',
      reason: req.reason ?? 'rolled back by hand',
      ...(req.qualification !== undefined ? { qualification: req.qualification } : {}),
      ...(req.rollout ? { rolloutId: req.rollout.id, expect: { imageId: req.rollout.candidate, rollout: req.rollout.id } } : {}),
    },
    reporter,
  );
}
