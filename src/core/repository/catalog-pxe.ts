/**
 * PXE assignments (one row per selector) and the boot events of `aim pxe serve`. Another process
 * (`aim pxe assign` while a server runs) changes assignments; the server reads them per request,
 * so a change takes effect at the next boot without a restart. Events are bounded: the oldest
 * beyond MAX_EVENTS are dropped, so a flood of requests cannot grow the catalog without end.
 */
import type Database from 'better-sqlite3';
import { NotFoundError } from '../../lib/errors.js';
import type { NewPxeBootEvent, PxeAssignment, PxeBootEvent, PxeBootSettings, PxeFetchKind, Selector } from '../model/pxe.js';

export const PXE_SCHEMA = `
CREATE TABLE IF NOT EXISTS pxe_assignments (
  selector TEXT PRIMARY KEY,
  kind TEXT NOT NULL,
  value TEXT,
  label TEXT,
  image_ref TEXT NOT NULL,
  image_id TEXT NOT NULL,
  boot TEXT NOT NULL,
  kernel_args TEXT NOT NULL DEFAULT '',
  channel TEXT,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pxe_events (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  at TEXT NOT NULL,
  machine TEXT,
  address TEXT NOT NULL,
  kind TEXT NOT NULL,
  path TEXT NOT NULL,
  image_id TEXT,
  selector TEXT,
  status INTEGER NOT NULL,
  bytes INTEGER NOT NULL,
  length INTEGER,
  complete INTEGER NOT NULL,
  ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS pxe_events_machine ON pxe_events(machine, seq);
`;

/** Events kept; older ones are dropped as new ones come. */
export const MAX_EVENTS = 100_000;

export interface PxeEventFilter {
  /** `mac:…`/`uuid:…` */
  machine?: string;
  /** Only events after this sequence number. */
  after?: number;
  /** The newest this many (default 100), returned oldest first. */
  limit?: number;
}

/** Backend-neutral: the SQLite catalog implements it. */
export interface PxeStore {
  /** Sets the assignment of a selector; returns the one it replaced. */
  assign(a: Omit<PxeAssignment, 'createdAt' | 'updatedAt'>): Promise<{ assignment: PxeAssignment; previous?: PxeAssignment }>;
  /** Removes a selector's assignment; returns it, or undefined when there was none. */
  unassign(selector: string): Promise<PxeAssignment | undefined>;
  /** Every assignment, by selector. */
  assignments(): Promise<PxeAssignment[]>;
  /** Records events in one transaction. */
  addEvents(events: readonly NewPxeBootEvent[]): Promise<void>;
  events(filter?: PxeEventFilter): Promise<PxeBootEvent[]>;
}

interface AssignmentRow {
  selector: string;
  kind: string;
  value: string | null;
  label: string | null;
  image_ref: string;
  image_id: string;
  boot: string;
  kernel_args: string;
  channel: string | null;
  created_at: string;
  updated_at: string;
}

interface EventRow {
  seq: number;
  at: string;
  machine: string | null;
  address: string;
  kind: string;
  path: string;
  image_id: string | null;
  selector: string | null;
  status: number;
  bytes: number;
  length: number | null;
  complete: number;
  ms: number;
}

function toAssignment(r: AssignmentRow): PxeAssignment {
  const selector: Selector = { kind: r.kind as Selector['kind'], key: r.selector };
  if (r.value !== null) selector.value = r.value;
  if (r.label !== null) selector.label = r.label;
  return {
    selector,
    imageRef: r.image_ref,
    imageId: r.image_id,
    boot: JSON.parse(r.boot) as PxeBootSettings,
    kernelArgs: r.kernel_args,
    ...(r.channel !== null ? { channel: r.channel } : {}),
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

function toEvent(r: EventRow): PxeBootEvent {
  return {
    seq: r.seq,
    at: r.at,
    ...(r.machine !== null ? { machine: r.machine } : {}),
    address: r.address,
    kind: r.kind as PxeFetchKind,
    path: r.path,
    ...(r.image_id !== null ? { imageId: r.image_id } : {}),
    ...(r.selector !== null ? { selector: r.selector } : {}),
    status: r.status,
    bytes: r.bytes,
    ...(r.length !== null ? { length: r.length } : {}),
    complete: r.complete === 1,
    ms: r.ms,
  };
}

/** Assignments and boot events over the catalog's SQLite handle. */
export class SqlitePxeStore implements PxeStore {
  private inserted = 0;

  constructor(private readonly db: Database.Database) {}

  migrate(): void {
    this.db.exec(PXE_SCHEMA);
  }

  private row(selector: string): PxeAssignment | undefined {
    const r = this.db.prepare('SELECT * FROM pxe_assignments WHERE selector = ?').get(selector) as AssignmentRow | undefined;
    return r ? toAssignment(r) : undefined;
  }

  async assign(a: Omit<PxeAssignment, 'createdAt' | 'updatedAt'>): Promise<{ assignment: PxeAssignment; previous?: PxeAssignment }> {
    return this.db.transaction(() => {
      // decided in the transaction, as aim image rm decides what holds an image in its own
      for (const [what, id] of [['image', a.imageId], ['kernel', a.boot.kernel.imageId]] as const) {
        if (this.db.prepare('SELECT 1 FROM images WHERE id = ?').get(id) === undefined) {
          throw new NotFoundError(`${what} ${id.slice(0, 12)} was removed meanwhile: ${a.selector.key} cannot boot it`, { hint: 'list images with: aim image list, and assign again' });
        }
      }
      const previous = this.row(a.selector.key);
      const now = new Date().toISOString();
      this.db
        .prepare(
          `INSERT INTO pxe_assignments(selector, kind, value, label, image_ref, image_id, boot, kernel_args, channel, created_at, updated_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT(selector) DO UPDATE SET image_ref = excluded.image_ref, image_id = excluded.image_id, boot = excluded.boot,
             kernel_args = excluded.kernel_args, channel = excluded.channel, updated_at = excluded.updated_at`,
        )
        .run(a.selector.key, a.selector.kind, a.selector.value ?? null, a.selector.label ?? null, a.imageRef, a.imageId, JSON.stringify(a.boot), a.kernelArgs, a.channel ?? null, now, now);
      return { assignment: this.row(a.selector.key)!, ...(previous ? { previous } : {}) };
    }).immediate();
  }

  async unassign(selector: string): Promise<PxeAssignment | undefined> {
    return this.db.transaction(() => {
      const previous = this.row(selector);
      if (previous) this.db.prepare('DELETE FROM pxe_assignments WHERE selector = ?').run(selector);
      return previous;
    }).immediate();
  }

  async assignments(): Promise<PxeAssignment[]> {
    return (this.db.prepare('SELECT * FROM pxe_assignments ORDER BY kind, selector').all() as AssignmentRow[]).map(toAssignment);
  }

  async addEvents(events: readonly NewPxeBootEvent[]): Promise<void> {
    if (events.length === 0) return;
    const insert = this.db.prepare(
      'INSERT INTO pxe_events(at, machine, address, kind, path, image_id, selector, status, bytes, length, complete, ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    );
    this.db.transaction(() => {
      for (const e of events) {
        insert.run(e.at, e.machine ?? null, e.address, e.kind, e.path, e.imageId ?? null, e.selector ?? null, e.status, e.bytes, e.length ?? null, e.complete ? 1 : 0, e.ms);
      }
      this.inserted += events.length;
      // trim now and then, not on every insert
      if (this.inserted >= 1000) {
        this.inserted = 0;
        this.db.prepare('DELETE FROM pxe_events WHERE seq <= (SELECT MAX(seq) FROM pxe_events) - ?').run(MAX_EVENTS);
      }
    }).immediate();
  }

  async events(filter: PxeEventFilter = {}): Promise<PxeBootEvent[]> {
    const where: string[] = [];
    const values: unknown[] = [];
    if (filter.machine !== undefined) {
      where.push('machine = ?');
      values.push(filter.machine);
    }
    if (filter.after !== undefined) {
      where.push('seq > ?');
      values.push(filter.after);
    }
    const sql = `SELECT * FROM pxe_events ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY seq DESC LIMIT ?`;
    const rows = this.db.prepare(sql).all(...values, filter.limit ?? 100) as EventRow[];
    return rows.reverse().map(toEvent);
  }
}
