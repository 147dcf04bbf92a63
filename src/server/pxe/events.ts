import type { NewPxeBootEvent, PxeFetchKind } from '../../core/model/pxe.js';
import type { PxeStore } from '../../core/repository/catalog-pxe.js';

/**
 * What `aim pxe serve` tells, one event at a time: `--json` prints each as a line of JSON, the
 * terminal gets a line of text. Every event has `event` (its kind) and `at` (ISO time).
 */
export type ServeEvent = { at: string } & (
  | {
      event: 'listening';
      http: string;
      /** The URL machines chain to (what DHCP hands iPXE). */
      bootUrl: string;
      interface?: string;
      dhcp?: 'proxy' | 'range';
      tftp: boolean;
      cacheDir: string;
      limits: Record<string, number>;
    }
  | {
      event: 'request';
      address: string;
      method: string;
      /** The request target as sent (cut at 200 characters). */
      target: string;
      status: number;
      /** Body bytes handed to the connection. */
      bytes: number;
      /** Body bytes announced (Content-Length or the range's length), when known. */
      length?: number;
      complete: boolean;
      ms: number;
      kind?: PxeFetchKind;
      machine?: string;
      imageId?: string;
      selector?: string;
      /** Why a request was refused or failed. */
      reason?: string;
    }
  | { event: 'refused'; address: string; reason: string }
  | { event: 'client-error'; address: string; status: number; reason: string }
  | { event: 'prepare'; bootId: string; imageId: string; imageRef: string; artifact: 'kernel' | 'initrd'; status: 'start' | 'done' | 'failed'; bytes?: number; seconds?: number; reason?: string }
  | { event: 'assignments'; count: number; bootIds: number; changed: boolean; pruned?: number }
  | { event: 'dhcp'; message: string; mac?: string; bootfile?: string; xid?: string }
  | { event: 'tftp'; message: string; file?: string; address?: string; complete?: boolean }
  | { event: 'dnsmasq'; message: string; pid?: number; exitCode?: number | null; signal?: string | null }
  | { event: 'warning'; code: string; message: string }
  | { event: 'stopped'; reason: string; requests: number; bytes: number }
);

export type ServeEventSink = (e: ServeEvent) => void;

/** An event stamped with the time. */
export function stamp<E extends Omit<ServeEvent, 'at'>>(e: E): E & { at: string } {
  return { at: new Date().toISOString(), ...e };
}

/**
 * Boot events go to the catalog in batches (one transaction every `intervalMs`), so a burst of
 * requests costs one sync rather than one per request; close() writes what is left.
 */
export class BootEventRecorder {
  private pending: NewPxeBootEvent[] = [];
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> = Promise.resolve();

  constructor(
    private readonly store: PxeStore,
    private readonly onError: (e: unknown) => void,
    private readonly intervalMs = 500,
  ) {}

  record(e: NewPxeBootEvent): void {
    this.pending.push(e);
    this.timer ??= setTimeout(() => void this.flush(), this.intervalMs);
  }

  flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.pending;
    this.pending = [];
    this.writing = this.writing.then(() => this.store.addEvents(batch)).catch(this.onError);
    return this.writing;
  }

  close(): Promise<void> {
    return this.flush();
  }
}
