/**
 * PXE assignments and boot events: which machines boot which image, and what they fetched, as the
 * catalog keeps them (src/core/repository/catalog-pxe.ts).
 */
import type { Platform } from '../bootable/platforms.js';

/** How an assignment picks machines; more specific kinds win: mac, then uuid, then label, then default. */
export type SelectorKind = 'mac' | 'uuid' | 'label' | 'default';

/**
 * A machine selector in its one stored form: `mac:52:54:00:12:34:56` (lower case, colons),
 * `uuid:…` (lower case), `label:key=value` (a query parameter of the boot request, such as
 * `platform=efi` or a site's own `rack=r12`), or `default` (every other machine).
 */
export interface Selector {
  kind: SelectorKind;
  /** The stored form, the assignment's key. */
  key: string;
  /** mac or uuid: the normalised value; label: the value (the key is in `label`). */
  value?: string;
  label?: string;
}

/** How an assigned image boots: what `aim build --format pxe` would be asked, pinned when assigned. */
export interface PxeBootSettings {
  platform: Platform;
  /** Extra initramfs modules beyond the platform's. */
  modules: string[];
  /** The service aim's init starts (argv), when not the one the image records. */
  entrypoint?: string[];
  /**
   * The kernel, chosen when the assignment was made (as aim build chooses it) and pinned by image
   * id: a kernel core made later changes nothing until the machine is assigned again.
   */
  kernel: { source: 'flag' | 'image' | 'default'; ref?: string; imageId: string; version: string };
}

export interface PxeAssignment {
  selector: Selector;
  /** What the user named (a tag), for display. */
  imageRef: string;
  /** The image, pinned when assigned: moving the tag later does not change what boots. */
  imageId: string;
  boot: PxeBootSettings;
  /** Appended to aim's kernel command line. */
  kernelArgs: string;
  /** The channel this assignment follows (recorded; the lifecycle moves it). */
  channel?: string;
  createdAt: string;
  updatedAt: string;
}

/** What a boot request fetched. */
export type PxeFetchKind = 'chain' | 'script' | 'unassigned' | 'kernel' | 'initrd' | 'tftp';

/** One response of the boot server to a machine, recorded when it ended. */
export interface PxeBootEvent {
  seq: number;
  at: string;
  /** The machine, as the request named it: `mac:…` or `uuid:…`; absent when it did not say. */
  machine?: string;
  /** The client's address. */
  address: string;
  kind: PxeFetchKind;
  /** The request path (query left out). */
  path: string;
  imageId?: string;
  /** The assignment that matched. */
  selector?: string;
  status: number;
  /** Body bytes sent. */
  bytes: number;
  /** Body bytes the response announced (a range's length), when known. */
  length?: number;
  /** Every announced byte went out. */
  complete: boolean;
  ms: number;
}

export type NewPxeBootEvent = Omit<PxeBootEvent, 'seq'>;
