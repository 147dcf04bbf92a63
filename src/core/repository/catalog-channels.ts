/**
 * Channels (one row each: the image it points at), their append-only history, the AMI pointers of
 * each channel (one per region) and qualification records.
 *
 * A move of a channel is one transaction: the pointer, its AMI pointers, the PXE assignments that
 * follow the channel (rows of pxe_assignments whose `channel` names it, catalog-pxe.ts) and the
 * history entry commit together or not at all. The move carries what it was planned against (the
 * channel's image and state, the image of every assignment that follows it); when another process
 * changed any of it meanwhile the transaction writes nothing and reports a conflict, and the
 * caller plans again.
 */
import type Database from 'better-sqlite3';
import { NotFoundError } from '../../lib/errors.js';
import type { Actor, AmiPointer, ChannelAction, ChannelEffects, ChannelHistoryEntry, ChannelRecord, ChannelState, QualificationRecord } from '../model/channel.js';
import type { PxeBootSettings } from '../model/pxe.js';

export const CHANNELS_SCHEMA = `
CREATE TABLE IF NOT EXISTS channels (
  name TEXT PRIMARY KEY,
  image_id TEXT NOT NULL,
  image_ref TEXT NOT NULL,
  state TEXT NOT NULL,
  rollout_id TEXT,
  rollout_pid INTEGER,
  rollout_host TEXT,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS channel_amis (
  channel TEXT NOT NULL REFERENCES channels(name) ON DELETE CASCADE,
  region TEXT NOT NULL,
  ami_id TEXT NOT NULL,
  image_id TEXT NOT NULL,
  publication_id TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  PRIMARY KEY (channel, region)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS channel_history (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  channel TEXT NOT NULL,
  action TEXT NOT NULL,
  image_id TEXT NOT NULL,
  image_ref TEXT NOT NULL,
  from_image_id TEXT,
  from_image_ref TEXT,
  reason TEXT,
  qualification_id TEXT,
  rollout_id TEXT,
  effects TEXT NOT NULL,
  by TEXT NOT NULL,
  at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS channel_history_channel ON channel_history(channel, seq);
CREATE TABLE IF NOT EXISTS qualifications (
  id TEXT PRIMARY KEY,
  image_id TEXT NOT NULL,
  passed INTEGER NOT NULL,
  record TEXT NOT NULL,
  finished_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS qualifications_image ON qualifications(image_id, finished_at);
`;

/** A PXE assignment that follows the channel, switched to the channel's new image. */
export interface PxeSwitch {
  selector: string;
  /** The image it boots now (what the move was planned against). */
  from: string;
  imageId: string;
  imageRef: string;
  /** The boot planned for the new image (kernel pinned anew). */
  boot: PxeBootSettings;
}

/** One move of a channel, planned by core/lifecycle/channels.ts. */
export interface ChannelMove {
  channel: string;
  action: ChannelAction;
  imageId: string;
  imageRef: string;
  /** What the channel held when the move was planned: its image (null: no such channel yet) and state. */
  expect: { imageId: string | null; state?: 'ready' | 'qualifying'; rollout?: string };
  state: 'ready' | 'qualifying';
  /** While qualifying: the rollout that holds the channel. */
  rollout?: { id: string; pid: number; host: string };
  /** The rollout that made the move, for the history (default: `rollout`'s). */
  rolloutId?: string;
  reason?: string;
  qualification?: string;
  /** Every assignment that follows the channel, switched (an assignment already on the image is listed with from === imageId). */
  pxe: PxeSwitch[];
  /** The channel's AMI pointers after the move (regions not listed lose theirs). */
  amis: Omit<AmiPointer, 'updatedAt'>[];
  by: Actor;
}

/** The catalog changed between planning and writing a move: plan again. */
export class ChannelConflict extends Error {
  constructor(readonly why: string) {
    super(`the channel changed meanwhile: ${why}`);
  }
}

export interface QualificationFilter {
  imageId?: string;
  /** The newest this many, newest first (default 50). */
  limit?: number;
}

/** Backend-neutral: the SQLite catalog implements it. */
export interface ChannelStore {
  get(name: string): Promise<ChannelRecord | undefined>;
  list(): Promise<ChannelRecord[]>;
  /** Oldest first; with `limit`, the newest that many. */
  history(channel: string, limit?: number): Promise<ChannelHistoryEntry[]>;
  /** Applies a move atomically; throws ChannelConflict (writing nothing) when what it was planned against changed. */
  move(move: ChannelMove): Promise<{ channel: ChannelRecord; entry: ChannelHistoryEntry }>;
  putQualification(q: QualificationRecord): Promise<void>;
  getQualification(id: string): Promise<QualificationRecord | undefined>;
  qualifications(filter?: QualificationFilter): Promise<QualificationRecord[]>;
  /** The newest qualification of each image among `imageIds`. */
  latestQualifications(imageIds: readonly string[]): Promise<Map<string, QualificationRecord>>;
}

interface ChannelRow {
  name: string;
  image_id: string;
  image_ref: string;
  state: string;
  rollout_id: string | null;
  rollout_pid: number | null;
  rollout_host: string | null;
  created_at: string;
  updated_at: string;
}

interface AmiRow {
  channel: string;
  region: string;
  ami_id: string;
  image_id: string;
  publication_id: string;
  updated_at: string;
}

interface HistoryRow {
  seq: number;
  channel: string;
  action: string;
  image_id: string;
  image_ref: string;
  from_image_id: string | null;
  from_image_ref: string | null;
  reason: string | null;
  qualification_id: string | null;
  rollout_id: string | null;
  effects: string;
  by: string;
  at: string;
}

const toAmi = (r: AmiRow): AmiPointer => ({ region: r.region, amiId: r.ami_id, imageId: r.image_id, publication: r.publication_id, updatedAt: r.updated_at });

function toHistory(r: HistoryRow): ChannelHistoryEntry {
  return {
    seq: r.seq,
    channel: r.channel,
    action: r.action as ChannelAction,
    imageId: r.image_id,
    imageRef: r.image_ref,
    ...(r.from_image_id !== null ? { fromImageId: r.from_image_id, fromImageRef: r.from_image_ref ?? r.from_image_id } : {}),
    ...(r.reason !== null ? { reason: r.reason } : {}),
    ...(r.qualification_id !== null ? { qualification: r.qualification_id } : {}),
    ...(r.rollout_id !== null ? { rollout: r.rollout_id } : {}),
    effects: JSON.parse(r.effects) as ChannelEffects,
    by: JSON.parse(r.by) as Actor,
    at: r.at,
  };
}

/** Channels, history, AMI pointers and qualifications over the catalog's SQLite handle. */
export class SqliteChannelStore implements ChannelStore {
  constructor(private readonly db: Database.Database) {}

  migrate(): void {
    this.db.exec(CHANNELS_SCHEMA);
  }

  private row(name: string): ChannelRecord | undefined {
    const r = this.db.prepare('SELECT * FROM channels WHERE name = ?').get(name) as ChannelRow | undefined;
    return r ? this.toChannel(r) : undefined;
  }

  private toChannel(r: ChannelRow): ChannelRecord {
    const amis = (this.db.prepare('SELECT * FROM channel_amis WHERE channel = ? ORDER BY region').all(r.name) as AmiRow[]).map(toAmi);
    return {
      name: r.name,
      imageId: r.image_id,
      imageRef: r.image_ref,
      state: r.state as ChannelState,
      ...(r.rollout_id !== null && r.rollout_pid !== null && r.rollout_host !== null ? { rollout: { id: r.rollout_id, pid: r.rollout_pid, host: r.rollout_host } } : {}),
      amis,
      createdAt: r.created_at,
      updatedAt: r.updated_at,
    };
  }

  async get(name: string): Promise<ChannelRecord | undefined> {
    return this.row(name);
  }

  async list(): Promise<ChannelRecord[]> {
    return (this.db.prepare('SELECT * FROM channels ORDER BY name').all() as ChannelRow[]).map((r) => this.toChannel(r));
  }

  async history(channel: string, limit?: number): Promise<ChannelHistoryEntry[]> {
    const rows = this.db.prepare('SELECT * FROM channel_history WHERE channel = ? ORDER BY seq DESC LIMIT ?').all(channel, limit ?? -1) as HistoryRow[];
    return rows.reverse().map(toHistory);
  }

  async move(m: ChannelMove): Promise<{ channel: ChannelRecord; entry: ChannelHistoryEntry }> {
    return this.db.transaction(() => {
      const current = this.row(m.channel);
      this.check(m, current);
      const now = new Date().toISOString();
      const rollout = m.state === 'qualifying' ? m.rollout : undefined;
      this.db
        .prepare(
          `INSERT INTO channels(name, image_id, image_ref, state, rollout_id, rollout_pid, rollout_host, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT(name) DO UPDATE SET image_id = excluded.image_id, image_ref = excluded.image_ref, state = excluded.state,
             rollout_id = excluded.rollout_id, rollout_pid = excluded.rollout_pid, rollout_host = excluded.rollout_host, updated_at = excluded.updated_at`,
        )
        .run(m.channel, m.imageId, m.imageRef, m.state, rollout?.id ?? null, rollout?.pid ?? null, rollout?.host ?? null, now, now);
      const effects: ChannelEffects = { pxe: [], amis: [] };
      for (const s of m.pxe) {
        if (s.from === s.imageId) continue;
        this.db
          .prepare('UPDATE pxe_assignments SET image_id = ?, image_ref = ?, boot = ?, updated_at = ? WHERE selector = ? AND channel = ?')
          .run(s.imageId, s.imageRef, JSON.stringify(s.boot), now, s.selector, m.channel);
        effects.pxe.push({ selector: s.selector, from: s.from, to: s.imageId });
      }
      const before = new Map((current?.amis ?? []).map((a) => [a.region, a]));
      const after = new Map(m.amis.map((a) => [a.region, a]));
      this.db.prepare('DELETE FROM channel_amis WHERE channel = ?').run(m.channel);
      const insert = this.db.prepare('INSERT INTO channel_amis(channel, region, ami_id, image_id, publication_id, updated_at) VALUES (?, ?, ?, ?, ?, ?)');
      for (const a of m.amis) {
        const was = before.get(a.region);
        insert.run(m.channel, a.region, a.amiId, a.imageId, a.publication, was?.amiId === a.amiId ? was.updatedAt : now);
        if (was?.amiId !== a.amiId) effects.amis.push({ region: a.region, ...(was ? { from: was.amiId } : {}), to: a.amiId });
      }
      for (const [region, was] of before) if (!after.has(region)) effects.amis.push({ region, from: was.amiId });
      const seq = this.db
        .prepare(
          `INSERT INTO channel_history(channel, action, image_id, image_ref, from_image_id, from_image_ref, reason, qualification_id, rollout_id, effects, by, at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(
          m.channel,
          m.action,
          m.imageId,
          m.imageRef,
          current?.imageId ?? null,
          current?.imageRef ?? null,
          m.reason ?? null,
          m.qualification ?? null,
          m.rolloutId ?? m.rollout?.id ?? null,
          JSON.stringify(effects),
          JSON.stringify(m.by),
          now,
        ).lastInsertRowid;
      const entry = toHistory(this.db.prepare('SELECT * FROM channel_history WHERE seq = ?').get(seq) as HistoryRow);
      return { channel: this.row(m.channel)!, entry };
    }).immediate();
  }

  /** What the move was planned against still holds: the channel's image and state, the assignments that follow it. */
  private check(m: ChannelMove, current: ChannelRecord | undefined): void {
    // decided in the transaction, as aim image rm decides what holds an image in its own
    if (this.db.prepare('SELECT 1 FROM images WHERE id = ?').get(m.imageId) === undefined) {
      throw new NotFoundError(`image ${m.imageId.slice(0, 12)} was removed meanwhile: channel ${m.channel} cannot point at it`, { hint: 'list images with: aim image list' });
    }
    if ((current?.imageId ?? null) !== m.expect.imageId) throw new ChannelConflict(`it points at ${current?.imageId.slice(0, 12) ?? 'nothing'}, not ${m.expect.imageId?.slice(0, 12) ?? 'nothing'}`);
    if (m.expect.state !== undefined && current && current.state !== m.expect.state) throw new ChannelConflict(`it is ${current.state}, not ${m.expect.state}`);
    if (m.expect.rollout !== undefined && current?.rollout?.id !== m.expect.rollout) throw new ChannelConflict(`another rollout holds it (${current?.rollout?.id ?? 'none'})`);
    const following = this.db.prepare('SELECT selector, image_id FROM pxe_assignments WHERE channel = ? ORDER BY selector').all(m.channel) as { selector: string; image_id: string }[];
    const planned = new Map(m.pxe.map((s) => [s.selector, s.from]));
    if (following.length !== planned.size || following.some((f) => planned.get(f.selector) !== f.image_id)) {
      throw new ChannelConflict('the PXE assignments that follow it changed');
    }
  }

  async putQualification(q: QualificationRecord): Promise<void> {
    this.db
      .prepare('INSERT OR REPLACE INTO qualifications(id, image_id, passed, record, finished_at) VALUES (?, ?, ?, ?, ?)')
      .run(q.id, q.imageId, q.passed ? 1 : 0, JSON.stringify(q), q.finishedAt);
  }

  async getQualification(id: string): Promise<QualificationRecord | undefined> {
    const r = this.db.prepare('SELECT record FROM qualifications WHERE id = ?').get(id) as { record: string } | undefined;
    return r ? (JSON.parse(r.record) as QualificationRecord) : undefined;
  }

  async qualifications(filter: QualificationFilter = {}): Promise<QualificationRecord[]> {
    const rows = (
      filter.imageId === undefined
        ? this.db.prepare('SELECT record FROM qualifications ORDER BY finished_at DESC, rowid DESC LIMIT ?').all(filter.limit ?? 50)
        : this.db.prepare('SELECT record FROM qualifications WHERE image_id = ? ORDER BY finished_at DESC, rowid DESC LIMIT ?').all(filter.imageId, filter.limit ?? 50)
    ) as { record: string }[];
    return rows.map((r) => JSON.parse(r.record) as QualificationRecord);
  }

  async latestQualifications(imageIds: readonly string[]): Promise<Map<string, QualificationRecord>> {
    const out = new Map<string, QualificationRecord>();
    const get = this.db.prepare('SELECT record FROM qualifications WHERE image_id = ? ORDER BY finished_at DESC, rowid DESC LIMIT 1');
    for (const id of new Set(imageIds)) {
      const r = get.get(id) as { record: string } | undefined;
      if (r) out.set(id, JSON.parse(r.record) as QualificationRecord);
    }
    return out;
  }
}
