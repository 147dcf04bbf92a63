import { createHash } from 'node:crypto';
import type Database from 'better-sqlite3';
import { InternalError } from '../../lib/errors.js';

/**
 * The catalog's indexes for impact analysis (`aim impact`): which package states (name,
 * architecture, version, source, and the exact content of its files) every image holds, which of
 * a package's files each slim image keeps, and which each profile traced. An advisory is answered
 * from these rows, never by walking images. Sets of paths are stored once by content (`impact_sets`)
 * and shared: a thousand images holding libssl3 3.0.15 with the same bytes share one state and one
 * file set, as the repository shares their blobs.
 */
export const IMPACT_SCHEMA = `
CREATE TABLE IF NOT EXISTS impact_images (
  n INTEGER PRIMARY KEY,
  image_id TEXT NOT NULL UNIQUE REFERENCES images(id) ON DELETE CASCADE,
  kind TEXT NOT NULL,
  gold_id TEXT,
  profile TEXT,
  release TEXT
);
CREATE TABLE IF NOT EXISTS impact_sets (
  id INTEGER PRIMARY KEY,
  digest TEXT NOT NULL UNIQUE,
  items TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS impact_states (
  id INTEGER PRIMARY KEY,
  package TEXT NOT NULL,
  arch TEXT NOT NULL,
  version TEXT NOT NULL,
  source TEXT NOT NULL,
  source_version TEXT NOT NULL,
  files INTEGER NOT NULL REFERENCES impact_sets(id),
  UNIQUE (package, arch, version, source, source_version, files)
);
CREATE INDEX IF NOT EXISTS impact_states_source ON impact_states(source);
CREATE TABLE IF NOT EXISTS impact_installed (
  state INTEGER NOT NULL REFERENCES impact_states(id),
  image INTEGER NOT NULL REFERENCES impact_images(n) ON DELETE CASCADE,
  PRIMARY KEY (state, image)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS impact_installed_image ON impact_installed(image);
CREATE TABLE IF NOT EXISTS impact_kept (
  package TEXT NOT NULL,
  image INTEGER NOT NULL REFERENCES impact_images(n) ON DELETE CASCADE,
  paths INTEGER NOT NULL REFERENCES impact_sets(id),
  PRIMARY KEY (package, image)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS impact_kept_image ON impact_kept(image);
CREATE TABLE IF NOT EXISTS impact_profiles (
  name TEXT PRIMARY KEY REFERENCES profiles(name) ON DELETE CASCADE,
  image_id TEXT NOT NULL,
  updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS impact_traced (
  package TEXT NOT NULL,
  profile TEXT NOT NULL REFERENCES impact_profiles(name) ON DELETE CASCADE,
  paths INTEGER NOT NULL REFERENCES impact_sets(id),
  PRIMARY KEY (package, profile)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS impact_traced_profile ON impact_traced(profile);
`;

/**
 * One path of a set: its image path (canonical: no symlinked directory in it) and, for a
 * package's files, the content key ("<sha256>", "<sha256>+<sparse map>", "link:<target>") and
 * the path as the package lists it when that differs (/lib/x86_64-linux-gnu/libc.so.6 on a
 * merged-/usr image).
 */
export type ImpactSetItem = [path: string, key?: string, listed?: string];

/** A package as installed in an image, with the content of its files. */
export interface ImpactPackageState {
  package: string;
  arch: string;
  version: string;
  source: string;
  sourceVersion: string;
  /** Sorted by path. */
  files: ImpactSetItem[];
}

/** What the index holds for an image with a package database ('gold') or without one ('other'). */
export interface ImageImpactIndex {
  kind: 'gold' | 'other';
  /** os-release "ID VERSION_ID" ("debian 12"); undefined when unknown. */
  release?: string;
  states: ImpactPackageState[];
}

/** A slim image: its gold, its profile, and per package of the gold the paths it keeps. */
export interface SlimImpactIndex {
  goldId: string;
  profile: string;
  kept: Map<string, string[]>;
}

export interface ImpactStateRow {
  id: number;
  package: string;
  arch: string;
  version: string;
  source: string;
  sourceVersion: string;
  files: number;
}

export interface ImpactImageRow {
  n: number;
  id: string;
  kind: 'gold' | 'slim' | 'other';
  goldId?: string;
  profile?: string;
  release?: string;
}

/** The impact index of a catalog. Every write replaces what was indexed for that image or profile. */
export interface ImpactStore {
  putImage(imageId: string, index: ImageImpactIndex): Promise<void>;
  /** The gold must be indexed first: the slim image holds the gold's package states. */
  putSlim(imageId: string, index: SlimImpactIndex): Promise<void>;
  /** `traced`: per package, the image paths of its files the profile used. */
  putProfile(name: string, imageId: string, updatedAt: string, traced: Map<string, string[]>): Promise<void>;
  /** Images not indexed yet (slim images flagged), and profiles indexed at an older update or never. */
  pending(): Promise<{ images: { id: string; slim: boolean }[]; profiles: string[] }>;
  statesBy(column: 'package' | 'source', names: readonly string[]): Promise<ImpactStateRow[]>;
  /** [state, image n] pairs. */
  installed(states: readonly number[]): Promise<[number, number][]>;
  images(): Promise<ImpactImageRow[]>;
  /** Image id → tags. */
  tags(): Promise<Map<string, string[]>>;
  /** [package, image n, set] for the slim images keeping files of these packages. */
  kept(packages: readonly string[]): Promise<[string, number, number][]>;
  /** [package, profile, set] for the profiles that traced files of these packages. */
  traced(packages: readonly string[]): Promise<[string, string, number][]>;
  /** Profile name → the image it was recorded on. */
  profiles(): Promise<Map<string, string>>;
  sets(ids: Iterable<number>): Promise<Map<number, ImpactSetItem[]>>;
}

const digests = new WeakMap<ImpactSetItem[] | string[], string>();

function setDigest(items: ImpactSetItem[] | string[]): { digest: string; json: string | undefined } {
  const known = digests.get(items);
  if (known) return { digest: known, json: undefined };
  const json = JSON.stringify(items);
  const digest = createHash('sha256').update(json).digest('hex');
  digests.set(items, digest);
  return { digest, json };
}

/** Chunks of at most 500 values for `IN (…)` lists (SQLite allows 32766 parameters; statements stay cached). */
function chunks<T>(values: readonly T[], size = 500): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < values.length; i += size) out.push(values.slice(i, i + size));
  return out;
}

/** The SQLite implementation, over the catalog's own connection. */
export class SqliteImpactStore implements ImpactStore {
  private readonly stmts = new Map<string, Database.Statement>();

  constructor(private readonly db: Database.Database) {}

  migrate(): void {
    this.db.exec(IMPACT_SCHEMA);
  }

  private stmt(sql: string): Database.Statement {
    let s = this.stmts.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.stmts.set(sql, s);
    }
    return s;
  }

  private setId(items: ImpactSetItem[] | string[]): number {
    const { digest, json } = setDigest(items);
    const found = this.stmt('SELECT id FROM impact_sets WHERE digest = ?').pluck().get(digest) as number | undefined;
    if (found !== undefined) return found;
    return Number(this.stmt('INSERT INTO impact_sets(digest, items) VALUES (?, ?)').run(digest, json ?? JSON.stringify(items)).lastInsertRowid);
  }

  private stateId(s: ImpactPackageState): number {
    const files = this.setId(s.files);
    const args = [s.package, s.arch, s.version, s.source, s.sourceVersion, files];
    const found = this.stmt('SELECT id FROM impact_states WHERE package = ? AND arch = ? AND version = ? AND source = ? AND source_version = ? AND files = ?').pluck().get(...args) as
      | number
      | undefined;
    if (found !== undefined) return found;
    return Number(this.stmt('INSERT INTO impact_states(package, arch, version, source, source_version, files) VALUES (?, ?, ?, ?, ?, ?)').run(...args).lastInsertRowid);
  }

  private addImageRow(imageId: string, kind: string, goldId: string | null, profile: string | null, release: string | null): number {
    // an explicit delete, so the rows of an earlier indexing go by cascade
    this.stmt('DELETE FROM impact_images WHERE image_id = ?').run(imageId);
    return Number(this.stmt('INSERT INTO impact_images(image_id, kind, gold_id, profile, release) VALUES (?, ?, ?, ?, ?)').run(imageId, kind, goldId, profile, release).lastInsertRowid);
  }

  async putImage(imageId: string, index: ImageImpactIndex): Promise<void> {
    this.db.transaction(() => {
      const n = this.addImageRow(imageId, index.kind, null, null, index.release ?? null);
      const insert = this.stmt('INSERT OR IGNORE INTO impact_installed(state, image) VALUES (?, ?)');
      for (const s of index.states) insert.run(this.stateId(s), n);
    })();
  }

  async putSlim(imageId: string, index: SlimImpactIndex): Promise<void> {
    this.db.transaction(() => {
      const gold = this.stmt('SELECT n, release FROM impact_images WHERE image_id = ?').get(index.goldId) as { n: number; release: string | null } | undefined;
      if (!gold) throw new InternalError(`impact index: gold image ${index.goldId.slice(0, 12)} of slim image ${imageId.slice(0, 12)} is not indexed`);
      const n = this.addImageRow(imageId, 'slim', index.goldId, index.profile, gold.release);
      this.stmt('INSERT INTO impact_installed(state, image) SELECT state, ? FROM impact_installed WHERE image = ?').run(n, gold.n);
      const insert = this.stmt('INSERT INTO impact_kept(package, image, paths) VALUES (?, ?, ?)');
      for (const [pkg, paths] of index.kept) if (paths.length > 0) insert.run(pkg, n, this.setId(paths));
    })();
  }

  async putProfile(name: string, imageId: string, updatedAt: string, traced: Map<string, string[]>): Promise<void> {
    this.db.transaction(() => {
      this.stmt('DELETE FROM impact_profiles WHERE name = ?').run(name);
      this.stmt('INSERT INTO impact_profiles(name, image_id, updated_at) VALUES (?, ?, ?)').run(name, imageId, updatedAt);
      const insert = this.stmt('INSERT INTO impact_traced(package, profile, paths) VALUES (?, ?, ?)');
      for (const [pkg, paths] of traced) if (paths.length > 0) insert.run(pkg, name, this.setId(paths));
    })();
  }

  async pending(): Promise<{ images: { id: string; slim: boolean }[]; profiles: string[] }> {
    const missing = this.stmt('SELECT (SELECT count(*) FROM images) - (SELECT count(*) FROM impact_images)').pluck().get() as number;
    const images =
      missing === 0
        ? []
        : (
            this.stmt(
              `SELECT i.id AS id, s.image_id IS NOT NULL AS slim FROM images i
               LEFT JOIN slim_reports s ON s.image_id = i.id
               WHERE NOT EXISTS (SELECT 1 FROM impact_images x WHERE x.image_id = i.id) ORDER BY i.created_at, i.id`,
            ).all() as { id: string; slim: number }[]
          ).map((r) => ({ id: r.id, slim: r.slim === 1 }));
    const profiles = this.stmt(
      'SELECT p.name FROM profiles p LEFT JOIN impact_profiles x ON x.name = p.name WHERE x.updated_at IS NULL OR x.updated_at <> p.updated_at ORDER BY p.name',
    )
      .pluck()
      .all() as string[];
    return { images, profiles };
  }

  async statesBy(column: 'package' | 'source', names: readonly string[]): Promise<ImpactStateRow[]> {
    const col = column === 'package' ? 'package' : 'source';
    const out: ImpactStateRow[] = [];
    for (const part of chunks([...new Set(names)])) {
      const rows = this.stmt(
        `SELECT id, package, arch, version, source, source_version AS sourceVersion, files FROM impact_states WHERE ${col} IN (${part.map(() => '?').join(',')})`,
      ).all(...part) as ImpactStateRow[];
      out.push(...rows);
    }
    return out;
  }

  async installed(states: readonly number[]): Promise<[number, number][]> {
    const out: [number, number][] = [];
    for (const part of chunks([...new Set(states)])) {
      out.push(...(this.stmt(`SELECT state, image FROM impact_installed WHERE state IN (${part.map(() => '?').join(',')})`).raw().all(...part) as [number, number][]));
    }
    return out;
  }

  async images(): Promise<ImpactImageRow[]> {
    const rows = this.stmt('SELECT n, image_id, kind, gold_id, profile, release FROM impact_images').raw().all() as [number, string, ImpactImageRow['kind'], string | null, string | null, string | null][];
    const out: ImpactImageRow[] = new Array(rows.length);
    for (let i = 0; i < rows.length; i++) {
      const [n, id, kind, goldId, profile, release] = rows[i]!;
      out[i] = { n, id, kind, goldId: goldId ?? undefined, profile: profile ?? undefined, release: release ?? undefined };
    }
    return out;
  }

  async tags(): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>();
    // in table order (no second lookup through the name index); an image's few tags sorted after
    for (const [name, id] of this.stmt('SELECT name, image_id FROM tags').raw().all() as [string, string][]) {
      const list = out.get(id);
      if (list) list.push(name);
      else out.set(id, [name]);
    }
    for (const list of out.values()) if (list.length > 1) list.sort();
    return out;
  }

  async kept(packages: readonly string[]): Promise<[string, number, number][]> {
    const out: [string, number, number][] = [];
    for (const part of chunks([...new Set(packages)])) {
      out.push(...(this.stmt(`SELECT package, image, paths FROM impact_kept WHERE package IN (${part.map(() => '?').join(',')})`).raw().all(...part) as [string, number, number][]));
    }
    return out;
  }

  async traced(packages: readonly string[]): Promise<[string, string, number][]> {
    const out: [string, string, number][] = [];
    for (const part of chunks([...new Set(packages)])) {
      out.push(...(this.stmt(`SELECT package, profile, paths FROM impact_traced WHERE package IN (${part.map(() => '?').join(',')})`).raw().all(...part) as [string, string, number][]));
    }
    return out;
  }

  async profiles(): Promise<Map<string, string>> {
    return new Map(this.stmt('SELECT name, image_id FROM impact_profiles').raw().all() as [string, string][]);
  }

  async sets(ids: Iterable<number>): Promise<Map<number, ImpactSetItem[]>> {
    const out = new Map<number, ImpactSetItem[]>();
    const get = this.stmt('SELECT items FROM impact_sets WHERE id = ?').pluck();
    for (const id of new Set(ids)) {
      const json = get.get(id) as string | undefined;
      if (json !== undefined) out.set(id, (JSON.parse(json) as (ImpactSetItem | string)[]).map((i) => (typeof i === 'string' ? [i] : i)));
    }
    return out;
  }
}
