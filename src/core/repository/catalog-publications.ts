/**
 * The publications journal: one row per publication (one live publication per idempotency key,
 * enforced by a partial unique index) and one row per resource it created. The lease on a
 * publication (its owner: pid, host, random token) serialises runs of the same ship; an owner
 * whose process is gone holds nothing (kill -9 leaves a publication to resume or remove).
 * Every write commits at once (synchronous=FULL): a resource recorded before the call that
 * creates it survives a kill -9 of the very next instant.
 */
import type Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { JournalResource, LeaseOwner, PublicationRecord, PublicationState, ResourceState } from '../model/publication.js';
import { isProcessAlive } from '../../lib/file-mutex.js';

export const PUBLICATIONS_SCHEMA = `
CREATE TABLE IF NOT EXISTS publications (
  id TEXT PRIMARY KEY,
  key TEXT NOT NULL,
  provider TEXT NOT NULL,
  source TEXT NOT NULL,
  image_id TEXT NOT NULL,
  image_ref TEXT NOT NULL,
  target TEXT NOT NULL,
  state TEXT NOT NULL,
  options TEXT NOT NULL,
  plan TEXT,
  out_dir TEXT,
  out_dir_created INTEGER NOT NULL DEFAULT 0,
  published TEXT NOT NULL DEFAULT '[]',
  error TEXT,
  owner_pid INTEGER,
  owner_host TEXT,
  owner_token TEXT,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS publications_live_key ON publications(key) WHERE state <> 'removed';
CREATE TABLE IF NOT EXISTS publication_resources (
  publication_id TEXT NOT NULL REFERENCES publications(id) ON DELETE CASCADE,
  seq INTEGER NOT NULL,
  kind TEXT NOT NULL,
  rid TEXT NOT NULL,
  location TEXT,
  state TEXT NOT NULL,
  data TEXT NOT NULL DEFAULT '{}',
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  PRIMARY KEY (publication_id, seq)
) WITHOUT ROWID;
`;

/** What a new publication starts with. */
export interface NewPublication {
  key: string;
  provider: string;
  source: string;
  imageId: string;
  imageRef: string;
  target: string;
  options: Record<string, unknown>;
  outDir?: string;
  outDirCreated?: boolean;
}

export type PublicationPatch = Partial<Pick<PublicationRecord, 'state' | 'options' | 'plan' | 'outDir' | 'outDirCreated' | 'published' | 'error'>>;

/** The lease was taken (`created` when the publication is new), or another live run holds it. */
export type Claim = { publication: PublicationRecord; created: boolean; busy?: undefined } | { busy: PublicationRecord };

/** Backend-neutral: the SQLite catalog implements it; a PostgreSQL catalog can too. */
export interface PublicationStore {
  /** Takes the lease on the live publication of `fresh.key`, creating it (state applying) when there is none. */
  claim(fresh: NewPublication, owner: LeaseOwner): Promise<Claim>;
  /** Takes the lease on a publication by id (resume, rm). */
  claimId(id: string, owner: LeaseOwner): Promise<Claim | undefined>;
  /** Gives the lease back (only when `owner` holds it), writing `patch` in the same transaction. */
  release(id: string, owner: LeaseOwner, patch?: PublicationPatch): Promise<void>;
  update(id: string, patch: PublicationPatch): Promise<void>;
  get(id: string): Promise<PublicationRecord | undefined>;
  /** Ids starting with `prefix`. */
  findIds(prefix: string): Promise<string[]>;
  /** The publication of `key` that is not removed. */
  live(key: string): Promise<PublicationRecord | undefined>;
  /** Every publication, oldest first. */
  list(): Promise<PublicationRecord[]>;
  resources(id: string): Promise<JournalResource[]>;
  addResource(id: string, resource: { kind: string; id: string; location?: string; state: ResourceState; data?: Record<string, unknown> }): Promise<JournalResource>;
  updateResource(id: string, seq: number, patch: { id?: string; location?: string; state?: ResourceState; data?: Record<string, unknown> }): Promise<JournalResource>;
}

/** This run, as a lease owner. */
export function newLeaseOwner(): LeaseOwner {
  return { pid: process.pid, host: hostname(), token: randomBytes(8).toString('hex') };
}

/** Whether the run holding a lease still lives (on another host it cannot be checked: assumed alive). */
export function ownerAlive(owner: LeaseOwner | undefined): boolean {
  if (!owner) return false;
  return owner.host !== hostname() || isProcessAlive(owner.pid);
}

/** The state to show: a run killed while applying left its publication interrupted. */
export function effectiveState(p: PublicationRecord): PublicationState {
  return p.state === 'applying' && !ownerAlive(p.owner) ? 'interrupted' : p.state;
}

interface PublicationRow {
  id: string;
  key: string;
  provider: string;
  source: string;
  image_id: string;
  image_ref: string;
  target: string;
  state: string;
  options: string;
  plan: string | null;
  out_dir: string | null;
  out_dir_created: number;
  published: string;
  error: string | null;
  owner_pid: number | null;
  owner_host: string | null;
  owner_token: string | null;
  created_at: string;
  updated_at: string;
}

interface ResourceRow {
  seq: number;
  kind: string;
  rid: string;
  location: string | null;
  state: string;
  data: string;
  created_at: string;
  updated_at: string;
}

function toPublication(r: PublicationRow): PublicationRecord {
  const p: PublicationRecord = {
    id: r.id,
    key: r.key,
    provider: r.provider,
    source: r.source,
    imageId: r.image_id,
    imageRef: r.image_ref,
    target: r.target,
    state: r.state as PublicationState,
    options: JSON.parse(r.options) as Record<string, unknown>,
    outDirCreated: r.out_dir_created === 1,
    published: JSON.parse(r.published) as unknown[],
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
  if (r.plan !== null) p.plan = JSON.parse(r.plan) as unknown;
  if (r.out_dir !== null) p.outDir = r.out_dir;
  if (r.error !== null) p.error = JSON.parse(r.error) as { code: string; message: string };
  if (r.owner_pid !== null && r.owner_host !== null && r.owner_token !== null) p.owner = { pid: r.owner_pid, host: r.owner_host, token: r.owner_token };
  return p;
}

function toResource(r: ResourceRow): JournalResource {
  return {
    seq: r.seq,
    kind: r.kind,
    id: r.rid,
    ...(r.location !== null ? { location: r.location } : {}),
    state: r.state as ResourceState,
    data: JSON.parse(r.data) as Record<string, unknown>,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

const COLUMNS: Record<keyof PublicationPatch, [string, (v: unknown) => unknown]> = {
  state: ['state', (v) => v],
  options: ['options', (v) => JSON.stringify(v)],
  plan: ['plan', (v) => (v === undefined ? null : JSON.stringify(v))],
  outDir: ['out_dir', (v) => v ?? null],
  outDirCreated: ['out_dir_created', (v) => (v ? 1 : 0)],
  published: ['published', (v) => JSON.stringify(v ?? [])],
  error: ['error', (v) => (v === undefined ? null : JSON.stringify(v))],
};

/** The publications journal over the catalog's SQLite handle. */
export class SqlitePublications implements PublicationStore {
  constructor(private readonly db: Database.Database) {}

  migrate(): void {
    this.db.exec(PUBLICATIONS_SCHEMA);
  }

  private row(id: string): PublicationRecord | undefined {
    const r = this.db.prepare('SELECT * FROM publications WHERE id = ?').get(id) as PublicationRow | undefined;
    return r ? toPublication(r) : undefined;
  }

  private liveRow(key: string): PublicationRecord | undefined {
    const r = this.db.prepare("SELECT * FROM publications WHERE key = ? AND state <> 'removed'").get(key) as PublicationRow | undefined;
    return r ? toPublication(r) : undefined;
  }

  private take(p: PublicationRecord, owner: LeaseOwner): Claim {
    if (p.owner && p.owner.token !== owner.token && ownerAlive(p.owner)) return { busy: p };
    this.db.prepare('UPDATE publications SET owner_pid = ?, owner_host = ?, owner_token = ?, updated_at = ? WHERE id = ?').run(owner.pid, owner.host, owner.token, new Date().toISOString(), p.id);
    return { publication: { ...p, owner }, created: false };
  }

  async claim(fresh: NewPublication, owner: LeaseOwner): Promise<Claim> {
    return this.db.transaction((): Claim => {
      const existing = this.liveRow(fresh.key);
      if (existing) return this.take(existing, owner);
      const now = new Date().toISOString();
      let id = randomBytes(6).toString('hex');
      while (this.row(id)) id = randomBytes(6).toString('hex');
      this.db
        .prepare(
          `INSERT INTO publications(id, key, provider, source, image_id, image_ref, target, state, options, out_dir, out_dir_created, owner_pid, owner_host, owner_token, created_at, updated_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, 'applying', ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(id, fresh.key, fresh.provider, fresh.source, fresh.imageId, fresh.imageRef, fresh.target, JSON.stringify(fresh.options), fresh.outDir ?? null, fresh.outDirCreated ? 1 : 0, owner.pid, owner.host, owner.token, now, now);
      return { publication: this.row(id)!, created: true };
    }).immediate();
  }

  async claimId(id: string, owner: LeaseOwner): Promise<Claim | undefined> {
    return this.db.transaction((): Claim | undefined => {
      const p = this.row(id);
      return p ? this.take(p, owner) : undefined;
    }).immediate();
  }

  async release(id: string, owner: LeaseOwner, patch: PublicationPatch = {}): Promise<void> {
    this.db.transaction(() => {
      const p = this.row(id);
      if (!p || p.owner?.token !== owner.token) return;
      this.patch(id, patch);
      this.db.prepare('UPDATE publications SET owner_pid = NULL, owner_host = NULL, owner_token = NULL WHERE id = ?').run(id);
    }).immediate();
  }

  private patch(id: string, patch: PublicationPatch): void {
    const sets: string[] = ['updated_at = ?'];
    const values: unknown[] = [new Date().toISOString()];
    for (const [k, v] of Object.entries(patch)) {
      const [column, encode] = COLUMNS[k as keyof PublicationPatch];
      sets.push(`${column} = ?`);
      values.push(encode(v));
    }
    this.db.prepare(`UPDATE publications SET ${sets.join(', ')} WHERE id = ?`).run(...values, id);
  }

  async update(id: string, patch: PublicationPatch): Promise<void> {
    this.patch(id, patch);
  }

  async get(id: string): Promise<PublicationRecord | undefined> {
    return this.row(id);
  }

  async findIds(prefix: string): Promise<string[]> {
    const rows = this.db.prepare('SELECT id FROM publications WHERE substr(id, 1, ?) = ? ORDER BY id').all(prefix.length, prefix) as { id: string }[];
    return rows.map((r) => r.id);
  }

  async live(key: string): Promise<PublicationRecord | undefined> {
    return this.liveRow(key);
  }

  async list(): Promise<PublicationRecord[]> {
    return (this.db.prepare('SELECT * FROM publications ORDER BY created_at, id').all() as PublicationRow[]).map(toPublication);
  }

  async resources(id: string): Promise<JournalResource[]> {
    return (this.db.prepare('SELECT * FROM publication_resources WHERE publication_id = ? ORDER BY seq').all(id) as ResourceRow[]).map(toResource);
  }

  async addResource(id: string, r: { kind: string; id: string; location?: string; state: ResourceState; data?: Record<string, unknown> }): Promise<JournalResource> {
    return this.db.transaction((): JournalResource => {
      const next = (this.db.prepare('SELECT COALESCE(MAX(seq), 0) + 1 AS n FROM publication_resources WHERE publication_id = ?').get(id) as { n: number }).n;
      const now = new Date().toISOString();
      this.db
        .prepare('INSERT INTO publication_resources(publication_id, seq, kind, rid, location, state, data, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)')
        .run(id, next, r.kind, r.id, r.location ?? null, r.state, JSON.stringify(r.data ?? {}), now, now);
      this.db.prepare('UPDATE publications SET updated_at = ? WHERE id = ?').run(now, id);
      return this.resource(id, next);
    }).immediate();
  }

  private resource(id: string, seq: number): JournalResource {
    return toResource(this.db.prepare('SELECT * FROM publication_resources WHERE publication_id = ? AND seq = ?').get(id, seq) as ResourceRow);
  }

  async updateResource(id: string, seq: number, patch: { id?: string; location?: string; state?: ResourceState; data?: Record<string, unknown> }): Promise<JournalResource> {
    return this.db.transaction((): JournalResource => {
      const current = this.resource(id, seq);
      const now = new Date().toISOString();
      this.db
        .prepare('UPDATE publication_resources SET rid = ?, location = ?, state = ?, data = ?, updated_at = ? WHERE publication_id = ? AND seq = ?')
        .run(patch.id ?? current.id, patch.location ?? current.location ?? null, patch.state ?? current.state, JSON.stringify({ ...current.data, ...patch.data }), now, id, seq);
      this.db.prepare('UPDATE publications SET updated_at = ? WHERE id = ?').run(now, id);
      return this.resource(id, seq);
    }).immediate();
  }
}
