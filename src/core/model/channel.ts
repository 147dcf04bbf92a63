/**
 * Channels, their history, qualifications and provider pointers, as the catalog keeps them
 * (src/core/repository/catalog-channels.ts).
 *
 * A channel (dev, qual, prod: names are the user's) points at one image. Every move is a history
 * entry that says who moved it, when, why, and what followed the channel: the PXE assignments that
 * follow it and its AMI pointers (one per region: the AMI a publication of the channel's image
 * holds there, what Pulumi components read from `aim channel list --json`).
 */

/** Who made a change: the user and host of the process, with its pid. */
export interface Actor {
  user: string;
  host: string;
  pid: number;
}

/**
 * - `ready`: the channel serves its image
 * - `qualifying`: a rollout promoted a candidate and qualifies it (the owner runs)
 * - `interrupted`: the rollout that was qualifying its candidate is gone (killed): roll back or promote by hand
 */
export type ChannelState = 'ready' | 'qualifying' | 'interrupted';

/** The AMI of the channel's image in one region: a pointer Pulumi components read. */
export interface AmiPointer {
  region: string;
  amiId: string;
  /** The image whose publication holds the AMI (the channel's image when the pointer was set). */
  imageId: string;
  /** The publication (aim ship list) that created it. */
  publication: string;
  updatedAt: string;
}

export interface ChannelRecord {
  name: string;
  imageId: string;
  /** What the user named when the channel moved there (a tag), for display. */
  imageRef: string;
  /** Stored `qualifying`; shown `interrupted` when its rollout is gone. */
  state: ChannelState;
  /** While qualifying: the rollout and the process running it. */
  rollout?: { id: string; pid: number; host: string };
  amis: AmiPointer[];
  createdAt: string;
  updatedAt: string;
}

/**
 * - `promote`: the channel moved to an image (by hand, or a rollout's candidate)
 * - `rollback`: it moved back to its last good version (by hand, or after a failed qualification)
 * - `qualified`: a rollout's candidate passed qualification (the channel keeps it)
 */
export type ChannelAction = 'promote' | 'rollback' | 'qualified';

/** What followed a move: PXE assignments switched, AMI pointers set or removed. */
export interface ChannelEffects {
  pxe: { selector: string; from: string; to: string }[];
  amis: { region: string; from?: string; to?: string }[];
}

export interface ChannelHistoryEntry {
  seq: number;
  channel: string;
  action: ChannelAction;
  imageId: string;
  imageRef: string;
  /** The image the channel left (none for its first promotion). */
  fromImageId?: string;
  fromImageRef?: string;
  /** Why: the user's --reason, or what a rollout found (a failed probe and its last answer). */
  reason?: string;
  /** The qualification that decided it. */
  qualification?: string;
  rollout?: string;
  effects: ChannelEffects;
  by: Actor;
  at: string;
}

/** One probe of a qualification, as judged against its expectation. */
export interface QualifiedProbe {
  probe: string;
  expectation: string;
  met: boolean;
  unmet?: string;
  tries: number;
  /** From QEMU's start until the probe met its expectation (or gave up). */
  readyMs: number;
  /** HTTP status or exit code of the last try. */
  status?: number;
  exitCode?: number;
}

/** What `aim qualify` recorded: a boot of the image's artifact in QEMU and its profile's probes. */
export interface QualificationRecord {
  id: string;
  imageId: string;
  imageRef: string;
  profile: string;
  passed: boolean;
  /**
   * The artifact booted: format and size, and how the format was chosen (--format, or how the
   * channel's machines boot: a PXE assignment that follows it; records made before aim chose say nothing).
   */
  artifact: { format: string; bytes: number; sha256: string; chosenBy?: 'flag' | 'channel' | 'default'; channel?: string; pxeAssignment?: string };
  /** Guest ports forwarded to the probes' loopback. */
  ports: number[];
  probes: QualifiedProbe[];
  timings: {
    /** Building the artifact. */
    buildMs: number;
    /** Passed: from QEMU's start until every probe had met its expectation. */
    readyMs?: number;
    /** From QEMU's start until the verdict (absent when QEMU never started). */
    vmMs?: number;
    totalMs: number;
  };
  /** Why it failed: the error's code and message. */
  error?: { code: string; message: string };
  by: Actor;
  startedAt: string;
  finishedAt: string;
}
