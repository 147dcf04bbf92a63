/**
 * What holds an image: the references that make removing it break what serves it, or what would
 * serve it after a rollback. A channel that points at it, an AMI pointer of a channel, a channel's
 * last good version (where `aim channel rollback` would go), a PXE assignment that boots it (or
 * boots its kernel, a kernel core image) and a live publication (anything `aim ship` made that is not removed: resume and rm work from it).
 *
 * `aim image rm` refuses a held image (E_IMAGE_IN_USE) unless forced, and `aim repo gc` never
 * collects the objects of a held image, even one whose catalog record was forced away.
 * The rules are pure functions of HoldData, which the catalog reads in one snapshot
 * (catalog-holds.ts), inside the transaction that removes an image.
 */
import { AimError, ExitCode } from '../../lib/errors.js';
import type { ChannelHistoryEntry, QualificationRecord } from '../model/channel.js';

/** One reference that keeps an image. */
export type ImageHold =
  | { kind: 'channel'; channel: string }
  | { kind: 'ami-pointer'; channel: string; region: string; amiId: string }
  | { kind: 'last-good'; channel: string }
  | { kind: 'pxe'; selector: string; channel?: string }
  | { kind: 'pxe-kernel'; selector: string }
  | { kind: 'publication'; id: string; provider: string; target: string; state: string };

type HistoryStep = Pick<ChannelHistoryEntry, 'action' | 'imageId' | 'imageRef' | 'fromImageId'>;
type Verdict = Pick<QualificationRecord, 'passed'>;

/** What the hold rules read from the catalog. */
export interface HoldData {
  channels: { name: string; imageId: string; amis: { region: string; amiId: string; imageId: string }[]; history: HistoryStep[] }[];
  /** The latest qualification of each image some channel's history names. */
  latest: ReadonlyMap<string, Verdict>;
  /** Every image in the catalog. */
  images: ReadonlySet<string>;
  /** kernelImageId: the kernel core image the assignment's boot pinned. */
  assignments: { selector: string; imageId: string; kernelImageId?: string; channel?: string }[];
  /** Publications not removed. */
  publications: { id: string; provider: string; target: string; state: string; imageId: string }[];
}

/**
 * The images a channel must not go back to: those it was rolled back from (or whose rollout was
 * rejected) since they were last promoted into it, and those whose latest qualification failed.
 */
export function badImages(history: readonly HistoryStep[], latest: ReadonlyMap<string, Verdict>): Set<string> {
  const status = new Map<string, 'ok' | 'bad'>();
  for (const e of history) {
    if (e.action === 'rollback' && e.fromImageId !== undefined) status.set(e.fromImageId, 'bad');
    if (e.action === 'promote' || e.action === 'rollback' || e.action === 'qualified') status.set(e.imageId, 'ok');
  }
  for (const [id, q] of latest) if (!q.passed) status.set(id, 'bad');
  return new Set([...status].filter(([, s]) => s === 'bad').map(([id]) => id));
}

/**
 * The last good version of a channel (pure): the newest image the channel held before its current
 * one that is not bad (badImages) and still exists; undefined when there is none.
 */
export function lastGoodVersion(
  history: readonly HistoryStep[],
  current: string,
  latest: ReadonlyMap<string, Verdict>,
  exists: (imageId: string) => boolean,
): { imageId: string; imageRef: string } | undefined {
  const bad = badImages(history, latest);
  for (const e of [...history].reverse()) {
    if (e.action !== 'promote' && e.action !== 'rollback') continue;
    if (e.imageId === current || bad.has(e.imageId) || !exists(e.imageId)) continue;
    return { imageId: e.imageId, imageRef: e.imageRef };
  }
  return undefined;
}

/** Every held image with what holds it (an image the catalog lacks can be held too: a forced removal left it dangling). */
export function holdsOf(data: HoldData): Map<string, ImageHold[]> {
  const out = new Map<string, ImageHold[]>();
  const add = (imageId: string, hold: ImageHold) => {
    const list = out.get(imageId);
    if (list) list.push(hold);
    else out.set(imageId, [hold]);
  };
  for (const c of data.channels) {
    add(c.imageId, { kind: 'channel', channel: c.name });
    for (const a of c.amis) add(a.imageId, { kind: 'ami-pointer', channel: c.name, region: a.region, amiId: a.amiId });
    const good = lastGoodVersion(c.history, c.imageId, data.latest, (id) => data.images.has(id));
    if (good) add(good.imageId, { kind: 'last-good', channel: c.name });
  }
  for (const a of data.assignments) {
    add(a.imageId, { kind: 'pxe', selector: a.selector, ...(a.channel !== undefined ? { channel: a.channel } : {}) });
    if (a.kernelImageId !== undefined && a.kernelImageId !== a.imageId) add(a.kernelImageId, { kind: 'pxe-kernel', selector: a.selector });
  }
  for (const p of data.publications) add(p.imageId, { kind: 'publication', id: p.id, provider: p.provider, target: p.target, state: p.state });
  return out;
}

/** A hold as a sentence: what uses the image, and what breaks when it goes. */
export function describeHold(h: ImageHold): string {
  switch (h.kind) {
    case 'channel':
      return `channel ${h.channel} serves it`;
    case 'ami-pointer':
      return `channel ${h.channel}'s AMI pointer in ${h.region} (${h.amiId}) is its`;
    case 'last-good':
      return `it is channel ${h.channel}'s last good version (where aim channel rollback ${h.channel} goes)`;
    case 'pxe':
      return `PXE assignment ${h.selector}${h.channel !== undefined ? ` (following channel ${h.channel})` : ''} boots it`;
    case 'pxe-kernel':
      return `PXE assignment ${h.selector} boots its kernel`;
    case 'publication':
      return `publication ${h.id} (${h.provider}, ${h.target}, ${h.state}) holds what aim ship made of it`;
  }
}

/** What is left dangling when a held image is removed anyway (--force). */
export function danglingEffect(h: ImageHold): string {
  switch (h.kind) {
    case 'channel':
      return `channel ${h.channel} points at a missing image (its PXE machines cannot boot it, rollouts cannot start from it) until you promote another image into it`;
    case 'ami-pointer':
      return `channel ${h.channel}'s AMI pointer in ${h.region} names ${h.amiId} of a missing image`;
    case 'last-good':
      return `aim channel rollback ${h.channel} goes to an older good version, or none`;
    case 'pxe':
      return `PXE assignment ${h.selector} boots a missing image (aim pxe serve cannot build its boot files) until assigned again`;
    case 'pxe-kernel':
      return `PXE assignment ${h.selector} boots a missing kernel (aim pxe serve cannot build its boot files) until assigned again`;
    case 'publication':
      return `publication ${h.id} cannot be resumed (aim ship rm ${h.id} still removes what it made)`;
  }
}

/** What to do to release a hold. */
function release(h: ImageHold): string {
  switch (h.kind) {
    case 'channel':
    case 'ami-pointer':
      return `aim channel promote <another image> ${h.channel}`;
    case 'last-good':
      return `promote newer versions into ${h.channel}`;
    case 'pxe':
    case 'pxe-kernel':
      return `aim pxe unassign ${h.selector} (or assign another image)`;
    case 'publication':
      return `aim ship rm ${h.id}`;
  }
}

/** An image something still uses (holdsOf); the holds are in the error's JSON. */
export class ImageInUseError extends AimError {
  constructor(
    readonly ref: string,
    readonly imageId: string,
    readonly holds: ImageHold[],
  ) {
    super('E_IMAGE_IN_USE', `${ref} (${imageId.slice(0, 12)}) is in use: ${holds.map(describeHold).join('; ')}`, ExitCode.usage, {
      hint: `release it first (${[...new Set(holds.map(release))].join('; ')}), or remove it anyway with --force, which leaves those references dangling (and aim repo gc keeps its objects while they remain)`,
    });
  }

  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), imageId: this.imageId, holds: this.holds };
  }
}
