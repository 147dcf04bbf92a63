import Database from 'better-sqlite3';
import { accessSync, constants } from 'node:fs';
import { dirname } from 'node:path';
import { errnoCode } from '../../lib/errors.js';
import type { Entry, EntryType } from '../model/entry.js';
import type { DataExtent } from '../model/sparse.js';
import { comparePaths } from '../../lib/path-codec.js';
import { SqliteChannelStore } from './catalog-channels.js';
import { readHoldData } from './catalog-holds.js';
import { SqliteImpactStore } from './catalog-impact.js';
import { SqlitePublications } from './catalog-publications.js';
import { SqliteLineage } from './catalog-lineage.js';
import { SqlitePxeStore } from './catalog-pxe.js';
import type { HoldData } from './holds.js';
import type { Catalog, ImageFactsRecord, ImageRecord, LicenseRecord, PackageRecord, ProfileRecord, TagRecord } from './types.js';

/** 2: entries.sparse (the data extents of files with holes). */
const SCHEMA_VERSION = 2;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS images (
  id TEXT PRIMARY KEY,
  created_at TEXT NOT NULL,
  source TEXT NOT NULL,
  source_kind TEXT NOT NULL,
  entry_count INTEGER NOT NULL,
  file_count INTEGER NOT NULL,
  total_size INTEGER NOT NULL,
  distro TEXT,
  os_release TEXT
);
CREATE TABLE IF NOT EXISTS tags (
  name TEXT PRIMARY KEY,
  image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
  updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS entries (
  image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
  path TEXT NOT NULL,
  type TEXT NOT NULL,
  mode INTEGER NOT NULL,
  uid INTEGER NOT NULL,
  gid INTEGER NOT NULL,
  mtime INTEGER NOT NULL,
  mtime_nsec INTEGER NOT NULL DEFAULT 0,
  size INTEGER,
  blob TEXT,
  sparse TEXT,
  target TEXT,
  dev_major INTEGER,
  dev_minor INTEGER,
  xattrs TEXT,
  PRIMARY KEY (image_id, path)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entries_blob ON entries(blob) WHERE blob IS NOT NULL;
CREATE TABLE IF NOT EXISTS packages (
  image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  arch TEXT NOT NULL,
  version TEXT NOT NULL,
  source TEXT,
  source_version TEXT,
  status TEXT,
  manager TEXT NOT NULL,
  installed_size INTEGER,
  PRIMARY KEY (image_id, name, arch)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS owners (
  image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
  path TEXT NOT NULL,
  package TEXT NOT NULL,
  PRIMARY KEY (image_id, path, package)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS licenses (
  image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
  package TEXT NOT NULL,
  spdx TEXT NOT NULL,
  expression TEXT,
  declared TEXT NOT NULL,
  machine_readable INTEGER NOT NULL,
  PRIMARY KEY (image_id, package)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS profiles (
  name TEXT PRIMARY KEY,
  image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS slim_reports (
  image_id TEXT PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,
  data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS elf (
  blob TEXT PRIMARY KEY,
  facts TEXT NOT NULL
) WITHOUT ROWID;
`;

interface EntryRow {
  path: string;
  type: string;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  mtime_nsec: number;
  size: number | null;
  blob: string | null;
  sparse: string | null;
  target: string | null;
  dev_major: number | null;
  dev_minor: number | null;
  xattrs: string | null;
}

interface ImageRow {
  id: string;
  created_at: string;
  source: string;
  source_kind: string;
  entry_count: number;
  file_count: number;
  total_size: number;
  distro: string | null;
  os_release: string | null;
}

function toImage(r: ImageRow): ImageRecord {
  const rec: ImageRecord = {
    id: r.id,
    createdAt: r.created_at,
    source: r.source,
    sourceKind: r.source_kind,
    entryCount: r.entry_count,
    fileCount: r.file_count,
    totalSize: r.total_size,
  };
  if (r.distro) rec.distro = r.distro;
  if (r.os_release) rec.osRelease = JSON.parse(r.os_release) as Record<string, string>;
  return rec;
}

function toEntry(r: EntryRow): Entry {
  const e: Entry = { path: r.path, type: r.type as EntryType, mode: r.mode, uid: r.uid, gid: r.gid, mtime: r.mtime };
  if (r.mtime_nsec) e.mtimeNsec = r.mtime_nsec;
  if (r.size !== null) e.size = r.size;
  if (r.blob !== null) e.blob = r.blob;
  if (r.sparse !== null) e.sparse = JSON.parse(r.sparse) as DataExtent[];
  if (r.target !== null) e.target = r.target;
  if (r.dev_major !== null) e.devMajor = r.dev_major;
  if (r.dev_minor !== null) e.devMinor = r.dev_minor;
  if (r.xattrs !== null) e.xattrs = JSON.parse(r.xattrs) as Record<string, string>;
  return e;
}

/**
 * SQLite says only "unable to open database file" (or read-only): the errno behind it (EROFS,
 * EACCES, ENOSPC…) comes from asking the filesystem the same question; WAL needs the directory
 * writable too (for -wal and -shm).
 */
function whyCannotOpen(file: string, error: unknown, readonly: boolean): unknown {
  if (!/^SQLITE_(CANTOPEN|READONLY|IOERR)/.test(errnoCode(error) ?? '')) return error;
  try {
    if (!readonly) accessSync(dirname(file), constants.W_OK);
    accessSync(file, readonly ? constants.R_OK : constants.R_OK | constants.W_OK);
  } catch (e) {
    return e;
  }
  return error;
}

/** The embedded catalog: one SQLite file in WAL mode. */
export class SqliteCatalog implements Catalog {
  private readonly db: Database.Database;
  readonly impact: SqliteImpactStore;
  readonly publications: SqlitePublications;
  readonly lineage: SqliteLineage;
  readonly pxe: SqlitePxeStore;
  readonly channels: SqliteChannelStore;

  constructor(file: string, options: { readonly?: boolean } = {}) {
    try {
      this.db = new Database(file, { readonly: options.readonly ?? false, timeout: 30_000 });
      if (!options.readonly) {
        this.db.pragma('journal_mode = WAL');
        this.db.pragma('synchronous = FULL');
      }
      this.db.pragma('foreign_keys = ON');
    } catch (e) {
      throw whyCannotOpen(file, e, options.readonly ?? false);
    }
    this.publications = new SqlitePublications(this.db);
    this.impact = new SqliteImpactStore(this.db);
    this.pxe = new SqlitePxeStore(this.db);
    this.channels = new SqliteChannelStore(this.db);
    this.lineage = new SqliteLineage(this.db);
  }

  /**
   * Runs `fn` as one transaction: bulk loads (the impact benchmark's generated fleet) commit once
   * instead of once per image. Nothing else may use this catalog until it settles.
   */
  async bulk<T>(fn: () => Promise<T>): Promise<T> {
    this.db.exec('BEGIN IMMEDIATE');
    try {
      const result = await fn();
      this.db.exec('COMMIT');
      return result;
    } catch (e) {
      if (this.db.inTransaction) this.db.exec('ROLLBACK');
      throw e;
    }
  }

  /** Creates tables (idempotent) and records the schema version. */
  migrate(): void {
    this.db.exec(SCHEMA);
    this.publications.migrate();
    this.impact.migrate();
    this.pxe.migrate();
    this.channels.migrate();
    this.lineage.migrate();
    this.db.prepare('INSERT OR IGNORE INTO meta(key, value) VALUES (?, ?)').run('schema_version', String(SCHEMA_VERSION));
    const hasSparse = () => (this.db.prepare('PRAGMA table_info(entries)').all() as { name: string }[]).some((c) => c.name === 'sparse');
    if (hasSparse()) return;
    // Version 1 catalogs lack entries.sparse (none of their files has holes): add it, once.
    this.db.transaction(() => {
      if (hasSparse()) return;
      this.db.exec('ALTER TABLE entries ADD COLUMN sparse TEXT');
      this.db.prepare("UPDATE meta SET value = ? WHERE key = 'schema_version'").run(String(SCHEMA_VERSION));
    }).immediate();
  }

  schemaVersion(): number | undefined {
    const row = this.db.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get() as { value: string } | undefined;
    return row ? Number(row.value) : undefined;
  }

  async addImage(record: ImageRecord, entries: Entry[], facts: ImageFactsRecord | undefined, tags: string[]): Promise<{ created: boolean }> {
    const now = new Date().toISOString();
    const insertImage = this.db.prepare(
      `INSERT OR IGNORE INTO images(id, created_at, source, source_kind, entry_count, file_count, total_size, distro, os_release)
       VALUES (@id, @createdAt, @source, @sourceKind, @entryCount, @fileCount, @totalSize, @distro, @osRelease)`,
    );
    const insertEntry = this.db.prepare(
      `INSERT INTO entries(image_id, path, type, mode, uid, gid, mtime, mtime_nsec, size, blob, sparse, target, dev_major, dev_minor, xattrs)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    const insertPackage = this.db.prepare(
      `INSERT OR REPLACE INTO packages(image_id, name, arch, version, source, source_version, status, manager, installed_size)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    const insertOwner = this.db.prepare('INSERT OR IGNORE INTO owners(image_id, path, package) VALUES (?, ?, ?)');
    const insertLicense = this.db.prepare(
      'INSERT OR REPLACE INTO licenses(image_id, package, spdx, expression, declared, machine_readable) VALUES (?, ?, ?, ?, ?, ?)',
    );
    const insertElf = this.db.prepare('INSERT OR IGNORE INTO elf(blob, facts) VALUES (?, ?)');
    const upsertTag = this.db.prepare(
      'INSERT INTO tags(name, image_id, updated_at) VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE SET image_id = excluded.image_id, updated_at = excluded.updated_at',
    );
    const tx = this.db.transaction((): boolean => {
      const created =
        insertImage.run({
          ...record,
          distro: record.distro ?? null,
          osRelease: record.osRelease ? JSON.stringify(record.osRelease) : null,
        }).changes > 0;
      if (created) {
        for (const e of entries) {
          insertEntry.run(
            record.id, e.path, e.type, e.mode, e.uid, e.gid, e.mtime, e.mtimeNsec ?? 0, e.size ?? null, e.blob ?? null,
            e.sparse ? JSON.stringify(e.sparse) : null, e.target ?? null, e.devMajor ?? null, e.devMinor ?? null, e.xattrs ? JSON.stringify(e.xattrs) : null,
          );
        }
        if (facts) {
          for (const p of facts.packages) {
            insertPackage.run(record.id, p.name, p.arch, p.version, p.source ?? null, p.sourceVersion ?? null, p.status ?? null, p.manager, p.installedSize ?? null);
          }
          for (const [path, pkgs] of facts.owners) for (const pkg of pkgs) insertOwner.run(record.id, path, pkg);
          for (const l of facts.licenses) {
            insertLicense.run(record.id, l.package, JSON.stringify(l.spdx), l.expression ?? null, JSON.stringify(l.declared), l.machineReadable ? 1 : 0);
          }
          for (const [blob, f] of facts.elf) insertElf.run(blob, JSON.stringify(f));
        }
      }
      for (const t of tags) upsertTag.run(t, record.id, now);
      return created;
    });
    return { created: tx.immediate() };
  }

  async getImage(id: string): Promise<ImageRecord | undefined> {
    const row = this.db.prepare('SELECT * FROM images WHERE id = ?').get(id) as ImageRow | undefined;
    return row ? toImage(row) : undefined;
  }

  async listImages(): Promise<(ImageRecord & { tags: string[] })[]> {
    const rows = this.db.prepare('SELECT * FROM images ORDER BY created_at, id').all() as ImageRow[];
    const tags = this.db.prepare('SELECT name, image_id FROM tags ORDER BY name').all() as { name: string; image_id: string }[];
    return rows.map((r) => ({ ...toImage(r), tags: tags.filter((t) => t.image_id === r.id).map((t) => t.name) }));
  }

  async resolve(ref: string): Promise<string | undefined> {
    const tag = this.db.prepare('SELECT image_id FROM tags WHERE name = ?').get(ref) as { image_id: string } | undefined;
    if (tag) return tag.image_id;
    const id = ref.startsWith('sha256:') ? ref.slice(7) : ref;
    if (!/^[0-9a-f]{8,64}$/.test(id)) return undefined;
    const ids = await this.findIdsByPrefix(id);
    return ids.length === 1 ? ids[0] : undefined;
  }

  async findIdsByPrefix(prefix: string): Promise<string[]> {
    const rows = this.db.prepare("SELECT id FROM images WHERE id >= ? AND id < ? || 'g'").all(prefix, prefix) as { id: string }[];
    return rows.map((r) => r.id);
  }

  async setTag(name: string, imageId: string): Promise<void> {
    this.db
      .prepare('INSERT INTO tags(name, image_id, updated_at) VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE SET image_id = excluded.image_id, updated_at = excluded.updated_at')
      .run(name, imageId, new Date().toISOString());
  }

  async removeTag(name: string): Promise<boolean> {
    return this.db.prepare('DELETE FROM tags WHERE name = ?').run(name).changes > 0;
  }

  async tagsOf(imageId: string): Promise<string[]> {
    return (this.db.prepare('SELECT name FROM tags WHERE image_id = ? ORDER BY name').all(imageId) as { name: string }[]).map((r) => r.name);
  }

  async listTags(prefix = ''): Promise<TagRecord[]> {
    // substr, not LIKE: a tag name may hold % or _
    const rows = this.db.prepare('SELECT name, image_id, updated_at FROM tags WHERE substr(name, 1, ?) = ? ORDER BY name').all(prefix.length, prefix) as { name: string; image_id: string; updated_at: string }[];
    return rows.map((r) => ({ name: r.name, imageId: r.image_id, updatedAt: r.updated_at }));
  }

  async removeImage(id: string, options: { guard?: (holds: HoldData) => void } = {}): Promise<void> {
    this.db.transaction(() => {
      options.guard?.(readHoldData(this.db));
      for (const table of ['tags', 'entries', 'packages', 'owners', 'licenses', 'profiles', 'slim_reports']) {
        this.db.prepare(`DELETE FROM ${table} WHERE image_id = ?`).run(id);
      }
      this.db.prepare('DELETE FROM images WHERE id = ?').run(id);
      // ELF facts are keyed by blob and shared; drop those no image references any more.
      this.db.prepare('DELETE FROM elf WHERE blob NOT IN (SELECT blob FROM entries WHERE blob IS NOT NULL)').run();
      // the image's rows of the impact index went with it (foreign keys); what only they reached goes now
      this.impact.pruneNow();
    }).immediate();
  }

  async holdData(): Promise<HoldData> {
    return this.db.transaction(() => readHoldData(this.db))();
  }

  async entries(imageId: string): Promise<Entry[]> {
    const rows = this.db.prepare('SELECT * FROM entries WHERE image_id = ?').all(imageId) as EntryRow[];
    return rows.map(toEntry).sort((a, b) => comparePaths(a.path, b.path));
  }

  async packages(imageId: string): Promise<PackageRecord[]> {
    const rows = this.db.prepare('SELECT * FROM packages WHERE image_id = ? ORDER BY name, arch').all(imageId) as Record<string, unknown>[];
    return rows.map((r) => {
      const p: PackageRecord = { name: r.name as string, version: r.version as string, arch: r.arch as string, manager: r.manager as string };
      if (r.source) p.source = r.source as string;
      if (r.source_version) p.sourceVersion = r.source_version as string;
      if (r.status) p.status = r.status as string;
      if (r.installed_size !== null) p.installedSize = r.installed_size as number;
      return p;
    });
  }

  async owners(imageId: string): Promise<Map<string, string[]>> {
    const rows = this.db.prepare('SELECT path, package FROM owners WHERE image_id = ? ORDER BY path, package').all(imageId) as { path: string; package: string }[];
    const out = new Map<string, string[]>();
    for (const r of rows) {
      const list = out.get(r.path);
      if (list) list.push(r.package);
      else out.set(r.path, [r.package]);
    }
    return out;
  }

  async licenses(imageId: string): Promise<LicenseRecord[]> {
    const rows = this.db.prepare('SELECT * FROM licenses WHERE image_id = ? ORDER BY package').all(imageId) as Record<string, unknown>[];
    return rows.map((r) => {
      const l: LicenseRecord = {
        package: r.package as string,
        spdx: JSON.parse(r.spdx as string) as string[],
        declared: JSON.parse(r.declared as string) as string[],
        machineReadable: r.machine_readable === 1,
      };
      if (r.expression) l.expression = r.expression as string;
      return l;
    });
  }

  async elfFacts(blobs: string[]): Promise<Map<string, unknown>> {
    const stmt = this.db.prepare('SELECT facts FROM elf WHERE blob = ?');
    const out = new Map<string, unknown>();
    for (const b of blobs) {
      const row = stmt.get(b) as { facts: string } | undefined;
      if (row) out.set(b, JSON.parse(row.facts));
    }
    return out;
  }

  async putProfile(p: ProfileRecord): Promise<void> {
    this.db
      .prepare(
        `INSERT INTO profiles(name, image_id, created_at, updated_at, data) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT(name) DO UPDATE SET image_id = excluded.image_id, updated_at = excluded.updated_at, data = excluded.data`,
      )
      .run(p.name, p.imageId, p.createdAt, p.updatedAt, JSON.stringify(p));
  }

  async putSlimReport(imageId: string, report: unknown): Promise<void> {
    this.db.prepare('INSERT OR REPLACE INTO slim_reports(image_id, data) VALUES (?, ?)').run(imageId, JSON.stringify(report));
  }

  async getSlimReport(imageId: string): Promise<unknown> {
    const row = this.db.prepare('SELECT data FROM slim_reports WHERE image_id = ?').get(imageId) as { data: string } | undefined;
    return row ? (JSON.parse(row.data) as unknown) : undefined;
  }

  async getProfile(name: string): Promise<ProfileRecord | undefined> {
    const row = this.db.prepare('SELECT data FROM profiles WHERE name = ?').get(name) as { data: string } | undefined;
    return row ? (JSON.parse(row.data) as ProfileRecord) : undefined;
  }

  async listProfiles(): Promise<Pick<ProfileRecord, 'name' | 'imageId' | 'createdAt' | 'updatedAt'>[]> {
    const rows = this.db.prepare('SELECT name, image_id, created_at, updated_at FROM profiles ORDER BY name').all() as Record<string, string>[];
    return rows.map((r) => ({ name: r.name!, imageId: r.image_id!, createdAt: r.created_at!, updatedAt: r.updated_at! }));
  }

  async referencedBlobs(): Promise<Set<string>> {
    const set = new Set<string>();
    for (const r of this.db.prepare('SELECT DISTINCT blob FROM entries WHERE blob IS NOT NULL').iterate() as Iterable<{ blob: string }>) set.add(r.blob);
    for (const r of this.db.prepare('SELECT id FROM images').iterate() as Iterable<{ id: string }>) set.add(r.id);
    return set;
  }

  async referencedAmong(blobs: Iterable<string>): Promise<Set<string>> {
    const byEntry = this.db.prepare('SELECT 1 FROM entries WHERE blob = ? LIMIT 1').pluck();
    const byImage = this.db.prepare('SELECT 1 FROM images WHERE id = ?').pluck();
    const out = new Set<string>();
    for (const b of blobs) if (byEntry.get(b) !== undefined || byImage.get(b) !== undefined) out.add(b);
    return out;
  }

  async blobUsers(blob: string, limit: number): Promise<{ imageId: string; path: string }[]> {
    const rows = this.db
      .prepare("SELECT id AS imageId, '' AS path FROM images WHERE id = ? UNION ALL SELECT image_id, path FROM entries WHERE blob = ? LIMIT ?")
      .all(blob, blob, limit) as { imageId: string; path: string }[];
    return rows;
  }

  async close(): Promise<void> {
    this.db.close();
  }
}
