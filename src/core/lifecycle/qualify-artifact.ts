/**
 * Which artifact a qualification boots: the one the channel ships. Machines that follow the channel
 * through a PXE assignment boot a PXE bundle, so the image is qualified as a PXE boot with that
 * assignment's settings (platform, modules, entrypoint, kernel: what aim pxe serve would give the
 * machine); otherwise a raw disk, what the disk providers (aws, vmware) start from. --format
 * overrides the choice; the record says how it was made.
 */
import { ConfigError } from '../../lib/errors.js';
import type { Platform } from '../bootable/platforms.js';
import { PLATFORM } from '../bootable/platforms.js';
import type { BuildFormat } from '../build/types.js';
import type { PxeAssignment } from '../model/pxe.js';
import { assignmentBootFor, checkChannel } from '../pxe/assignments.js';
import type { Repository } from '../repository/repository.js';

/** The artifact a qualification boots, and why. */
export interface QualifyArtifact {
  format: BuildFormat;
  /** flag: --format; channel: how the channel's machines boot; default: raw (nothing else known). */
  chosenBy: 'flag' | 'channel' | 'default';
  /** The channel whose consumers were looked at. */
  channel?: string;
  /** A PXE boot as an assignment that follows the channel does it (planned for this image). */
  pxe?: { selector: string; platform: Platform; modules: string[]; entrypoint?: string[]; kernelRef?: string; kernelArgs: string };
  /** One line for people: what was chosen and from what. */
  why: string;
}

export interface ArtifactQuestion {
  imageId: string;
  /** --format, when given. */
  format?: BuildFormat;
  /** The channels the image is qualified for (a rollout's; else those that hold it). */
  channels: readonly string[];
  /** Every PXE assignment (the catalog's order: by kind, then selector). */
  assignments: readonly Pick<PxeAssignment, 'selector' | 'imageId' | 'boot' | 'channel' | 'kernelArgs'>[];
}

/** The choice (pure): see the file's comment. The first assignment that follows one of the channels is the one booted. */
export function chooseQualifyArtifact(q: ArtifactQuestion): QualifyArtifact {
  const follower = q.channels.flatMap((c) => q.assignments.filter((a) => a.channel === c).map((a) => ({ channel: c, a })))[0];
  const pxe = follower && { selector: follower.a.selector.key, ...assignmentBootFor(follower.a, q.imageId), kernelArgs: follower.a.kernelArgs };
  if (pxe && PLATFORM[pxe.platform].qemu === undefined && (q.format ?? 'pxe') === 'pxe') {
    throw new ConfigError(`PXE assignment ${pxe.selector} (following channel ${follower.channel}) boots ${pxe.platform} machines, whose devices QEMU cannot emulate: its boot cannot be qualified here`, {
      hint: 'qualify a disk instead: --format raw',
    });
  }
  const others = follower ? q.assignments.filter((a) => a.channel === follower.channel).length - 1 : 0;
  const via = follower ? `PXE assignment ${follower.a.selector.key}${others > 0 ? ` (and ${others} more)` : ''} follows channel ${follower.channel}` : '';
  if (q.format !== undefined) {
    const withPxe = q.format === 'pxe' && pxe;
    return {
      format: q.format,
      chosenBy: 'flag',
      ...(withPxe ? { channel: follower.channel, pxe } : {}),
      why: `--format ${q.format}${withPxe ? `, booted as ${via}` : ''}`,
    };
  }
  if (follower && pxe) return { format: 'pxe', chosenBy: 'channel', channel: follower.channel, pxe, why: `pxe: ${via}` };
  const which = q.channels.length === 0 ? 'no channel holds the image' : `no PXE assignment follows channel ${q.channels.join(', ')}`;
  return { format: 'raw', chosenBy: 'default', ...(q.channels.length === 1 ? { channel: q.channels[0] } : {}), why: `raw: ${which}` };
}

/**
 * The artifact to qualify `imageId` as: for `channel` (a rollout's, or --channel), else for the
 * channels that point at the image now.
 */
export async function qualifyArtifactFor(repo: Repository, req: { imageId: string; format?: BuildFormat; channel?: string }): Promise<QualifyArtifact> {
  const channels = req.channel !== undefined ? [checkChannel(req.channel)] : (await repo.catalog.channels.list()).filter((c) => c.imageId === req.imageId).map((c) => c.name);
  return chooseQualifyArtifact({ imageId: req.imageId, ...(req.format !== undefined ? { format: req.format } : {}), channels, assignments: await repo.catalog.pxe.assignments() });
}
