import type Database from 'better-sqlite3';

/**
 * Where images come from and what was built of them: one lineage row per image made from another
 * (`aim update`: a gold image from its parent with packages replaced; the slim image made again
 * from the new gold, from the slim image it follows), with who and when; and every artifact
 * `aim build` (or a ship) made of an image, with its build options, so an update can build the
 * same artifacts of the new version. A row goes with its image; the parent may be gone.
 */

export const LINEAGE_SCHEMA = `
CREATE TABLE IF NOT EXISTS image_lineage (
  image_id TEXT PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,
  parent_id TEXT NOT NULL,
  kind TEXT NOT NULL,
  gold_id TEXT,
  profile TEXT,
  detail TEXT NOT NULL,
  actor TEXT NOT NULL,
  created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS image_lineage_parent ON image_lineage(parent_id);
CREATE TABLE IF NOT EXISTS image_builds (
  image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
  format TEXT NOT NULL,
  out_dir TEXT NOT NULL,
  options TEXT NOT NULL,
  built_at TEXT NOT NULL,
  PRIMARY KEY (image_id, format, out_dir)
) WITHOUT ROWID;
`;

/** How an image was made from its parent. */
export interface LineageRecord {
  imageId: string;
  parentId: string;
  /** update: a gold image with packages replaced; reslim: the slim image made again from the updated gold. */
  kind: 'update' | 'reslim';
  /** reslim: the gold image it was made from. */
  goldId?: string;
  profile?: string;
  /** What changed: the packages (name, from, to), the input, scripts run. JSON. */
  detail: Record<string, unknown>;
  /** Who made it ("alice@build-1", or as AIM_ACTOR says). */
  actor: string;
  createdAt: string;
}

export interface BuildRecord {
  imageId: string;
  format: string;
  outDir: string;
  /** The build request's options (platform, modules, init, entrypoint, sizes, kernel…). */
  options: Record<string, unknown>;
  builtAt: string;
}

export interface LineageStore {
  /** Records how an image was made (kept when the same image is made again). */
  record(r: LineageRecord): Promise<void>;
  get(imageId: string): Promise<LineageRecord | undefined>;
  /** Images made from this one. */
  children(imageId: string): Promise<LineageRecord[]>;
  recordBuild(b: BuildRecord): Promise<void>;
  /** The builds of an image, newest first. */
  builds(imageId: string): Promise<BuildRecord[]>;
}

interface LineageRow {
  image_id: string;
  parent_id: string;
  kind: string;
  gold_id: string | null;
  profile: string | null;
  detail: string;
  actor: string;
  created_at: string;
}

const toRecord = (r: LineageRow): LineageRecord => ({
  imageId: r.image_id,
  parentId: r.parent_id,
  kind: r.kind as LineageRecord['kind'],
  ...(r.gold_id !== null ? { goldId: r.gold_id } : {}),
  ...(r.profile !== null ? { profile: r.profile } : {}),
  detail: JSON.parse(r.detail) as Record<string, unknown>,
  actor: r.actor,
  createdAt: r.created_at,
});

export class SqliteLineage implements LineageStore {
  constructor(private readonly db: Database.Database) {}

  migrate(): void {
    this.db.exec(LINEAGE_SCHEMA);
  }

  async record(r: LineageRecord): Promise<void> {
    this.db
      .prepare('INSERT OR IGNORE INTO image_lineage(image_id, parent_id, kind, gold_id, profile, detail, actor, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
      .run(r.imageId, r.parentId, r.kind, r.goldId ?? null, r.profile ?? null, JSON.stringify(r.detail), r.actor, r.createdAt);
  }

  async get(imageId: string): Promise<LineageRecord | undefined> {
    const row = this.db.prepare('SELECT * FROM image_lineage WHERE image_id = ?').get(imageId) as LineageRow | undefined;
    return row ? toRecord(row) : undefined;
  }

  async children(imageId: string): Promise<LineageRecord[]> {
    return (this.db.prepare('SELECT * FROM image_lineage WHERE parent_id = ? ORDER BY created_at, image_id').all(imageId) as LineageRow[]).map(toRecord);
  }

  async recordBuild(b: BuildRecord): Promise<void> {
    this.db
      .prepare('INSERT INTO image_builds(image_id, format, out_dir, options, built_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT(image_id, format, out_dir) DO UPDATE SET options = excluded.options, built_at = excluded.built_at')
      .run(b.imageId, b.format, b.outDir, JSON.stringify(b.options), b.builtAt);
  }

  async builds(imageId: string): Promise<BuildRecord[]> {
    const rows = this.db.prepare('SELECT * FROM image_builds WHERE image_id = ? ORDER BY built_at DESC').all(imageId) as { image_id: string; format: string; out_dir: string; options: string; built_at: string }[];
    return rows.map((r) => ({ imageId: r.image_id, format: r.format, outDir: r.out_dir, options: JSON.parse(r.options) as Record<string, unknown>, builtAt: r.built_at }));
  }
}
