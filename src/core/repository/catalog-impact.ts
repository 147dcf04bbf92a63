import { createHash } from 'node:crypto';
import type Database from 'better-sqlite3';
import { InternalError } from '../../lib/errors.js';

/**
 * The catalog's indexes for impact analysis (`aim impact`). Everything that many images share is
 * stored once, by content, in `impact_sets`, as the repository stores blobs: the files of a
 * package state (name, architecture, versions and the exact content of its files), the set of
 * package states an image holds, what a slim image keeps of each package, what a profile traced
 * of each package. An image row points at its sets; a thousand images built from one base share
 * one state set, and an advisory is answered from the few sets it touches plus one row per
 * image, never by walking images or their package lists.
 */
/** Bumped when the tables below change: the index is derived from the catalog, so an older one is dropped and rebuilt on first use. */
const IMPACT_VERSION = '4';
const IMPACT_TABLES = ['impact_groups', 'impact_profiles', 'impact_images', 'impact_members', 'impact_states', 'impact_sets', 'impact_installed', 'impact_kept', 'impact_traced'];
const IMPACT_TRIGGERS = ['impact_tags_insert', 'impact_tags_delete', 'impact_tags_update', 'impact_profile_changed', 'impact_profile_removed', 'impact_groups_insert', 'impact_groups_delete', 'impact_groups_update'];

/** An image's tags, one a line; NULL when it has none. */
const tagsOf = (imageId: string) => `(SELECT group_concat(t.name, char(10)) FROM tags t WHERE t.image_id = ${imageId})`;

/**
 * An image as impact_images.ref holds it, the text the report's reference is cut from:
 * "<id>\t<gold or empty>\t<tags or empty>[\t<profile>]". Ids are hex and tags hold neither tab
 * nor newline; the profile, last, may hold anything. (The tags are in no order: ORDER BY inside
 * group_concat makes the schema "malformed" to a sqlite3 older than 3.44; the reader sorts the
 * rare image with several.)
 */
const refOf = (imageId: string, goldId: string, profile: string) =>
  `${imageId} || char(9) || ifnull(${goldId}, '') || char(9) || ifnull(${tagsOf(imageId)}, '') || CASE WHEN ${profile} IS NULL THEN '' ELSE char(9) || ${profile} END`;
/** The ref of the row an UPDATE of impact_images is at. */
const ownRef = refOf('impact_images.image_id', 'impact_images.gold_id', 'impact_images.profile');

/** The impact_groups row of an impact_images row (NEW or OLD in a trigger); NULLs compare as values. */
const groupOf = (row: string) => `kind = ${row}.kind AND release IS ${row}.release AND states = ${row}.states AND kept IS ${row}.kept AND traced IS ${row}.traced`;
const countIn = (row: string) =>
  `INSERT INTO impact_groups(kind, release, states, kept, traced, images) SELECT ${row}.kind, ${row}.release, ${row}.states, ${row}.kept, ${row}.traced, 0
     WHERE NOT EXISTS (SELECT 1 FROM impact_groups WHERE ${groupOf(row)});
   UPDATE impact_groups SET images = images + 1 WHERE ${groupOf(row)};`;
const countOut = (row: string) =>
  `UPDATE impact_groups SET images = images - 1 WHERE ${groupOf(row)};
   DELETE FROM impact_groups WHERE ${groupOf(row)} AND images <= 0;`;

export const IMPACT_SCHEMA = `
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
CREATE TABLE IF NOT EXISTS impact_members (
  state INTEGER NOT NULL REFERENCES impact_states(id),
  stateset INTEGER NOT NULL REFERENCES impact_sets(id),
  PRIMARY KEY (state, stateset)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS impact_images (
  n INTEGER PRIMARY KEY,
  image_id TEXT NOT NULL UNIQUE REFERENCES images(id) ON DELETE CASCADE,
  kind TEXT NOT NULL,
  gold_id TEXT,
  profile TEXT,
  release TEXT,
  states INTEGER NOT NULL REFERENCES impact_sets(id),
  kept INTEGER REFERENCES impact_sets(id),
  traced INTEGER REFERENCES impact_sets(id),
  ref TEXT
);
CREATE INDEX IF NOT EXISTS impact_images_profile ON impact_images(profile) WHERE profile IS NOT NULL;
CREATE INDEX IF NOT EXISTS impact_images_groups ON impact_images(kind, release, states, kept, traced, n, ref);
CREATE TABLE IF NOT EXISTS impact_groups (
  kind TEXT NOT NULL,
  release TEXT,
  states INTEGER NOT NULL,
  kept INTEGER,
  traced INTEGER,
  images INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS impact_groups_key ON impact_groups(kind, release, states, kept, traced, images);
CREATE TRIGGER IF NOT EXISTS impact_groups_insert AFTER INSERT ON impact_images BEGIN
  ${countIn('NEW')}
END;
CREATE TRIGGER IF NOT EXISTS impact_groups_delete AFTER DELETE ON impact_images BEGIN
  ${countOut('OLD')}
END;
CREATE TRIGGER IF NOT EXISTS impact_groups_update AFTER UPDATE OF kind, release, states, kept, traced ON impact_images BEGIN
  ${countOut('OLD')}
  ${countIn('NEW')}
END;
CREATE INDEX IF NOT EXISTS impact_tags_image ON tags(image_id, name);
CREATE TRIGGER IF NOT EXISTS impact_tags_insert AFTER INSERT ON tags BEGIN
  UPDATE impact_images SET ref = ${ownRef} WHERE image_id = NEW.image_id;
END;
CREATE TRIGGER IF NOT EXISTS impact_tags_delete AFTER DELETE ON tags BEGIN
  UPDATE impact_images SET ref = ${ownRef} WHERE image_id = OLD.image_id;
END;
CREATE TRIGGER IF NOT EXISTS impact_tags_update AFTER UPDATE OF name, image_id ON tags BEGIN
  UPDATE impact_images SET ref = ${ownRef} WHERE image_id IN (OLD.image_id, NEW.image_id);
END;
CREATE TRIGGER IF NOT EXISTS impact_profile_changed AFTER UPDATE OF name, image_id, updated_at ON profiles
  WHEN OLD.name IS NOT NEW.name OR OLD.image_id IS NOT NEW.image_id OR OLD.updated_at IS NOT NEW.updated_at BEGIN
  DELETE FROM impact_profiles WHERE name IN (OLD.name, NEW.name);
END;
CREATE TRIGGER IF NOT EXISTS impact_profile_removed AFTER DELETE ON profiles BEGIN
  DELETE FROM impact_profiles WHERE name = OLD.name;
END;
-- what a set's deletion checks (its foreign keys), so pruning costs what it removes, not the index's size
CREATE INDEX IF NOT EXISTS impact_members_stateset ON impact_members(stateset);
CREATE INDEX IF NOT EXISTS impact_states_files ON impact_states(files);
CREATE TABLE IF NOT EXISTS impact_profiles (
  name TEXT PRIMARY KEY REFERENCES profiles(name) ON DELETE CASCADE,
  image_id TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  traced INTEGER NOT NULL REFERENCES impact_sets(id)
);
CREATE INDEX IF NOT EXISTS impact_profiles_image ON impact_profiles(image_id);
CREATE INDEX IF NOT EXISTS impact_profiles_freshness ON profiles(name, updated_at);
`;

/**
 * One path of a set: its image path (canonical: no symlinked directory in it) and, for a
 * package's files, the content key ("<sha256>", "<sha256>+<size>+<sparse map>", "link:<target>")
 * and the path as the package lists it when that differs (/lib/x86_64-linux-gnu/libc.so.6 on a
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

/** An image as a report names it: its tags (sorted), and for a slim image its gold and profile. */
export interface ImpactImageRef {
  id: string;
  tags: string[];
  gold?: string;
  profile?: string;
}

/**
 * Images that hold the same things for impact analysis: the same package-state set, kept map,
 * traced map, release and kind. Findings are computed once per group.
 */
export interface ImpactImageGroup {
  kind: 'gold' | 'slim' | 'other';
  release?: string;
  /** Set of the package states the images hold (a slim image: its gold's). */
  states: number;
  /** Slim images: package → set of kept paths. */
  kept?: number;
  /** Package → set of traced paths: the slim image's profile's, or the union of the gold image's profiles'. Undefined: not known. */
  traced?: number;
  /** In the order the images were indexed. */
  images: ImpactImageRef[];
}

/** A package → path set map, as stored. */
export type ImpactPackageMap = Map<string, number>;

/** Rows of the impact index nothing live reaches: left by removed images and profiles. */
export interface ImpactStaleRows {
  /** Image rows whose image is gone. */
  images: number;
  /** Profile rows whose profile is gone. */
  profiles: number;
  /** Package states no live image holds, their memberships, and sets nothing live reaches. */
  states: number;
  members: number;
  sets: number;
}

/**
 * What the live rows of the index reach, as common table expressions: the rows of images and
 * profiles that still exist; their state sets, maps (kept, traced) and the path sets each map
 * names (map items are [package, path set] pairs); the states of live state sets; their file sets.
 */
const LIVE = `WITH
  imgs AS (SELECT states, kept, traced FROM impact_images WHERE image_id IN (SELECT id FROM images)),
  profs AS (SELECT traced FROM impact_profiles WHERE name IN (SELECT name FROM profiles)),
  statesets AS (SELECT states AS id FROM imgs),
  maps AS (SELECT kept AS id FROM imgs WHERE kept IS NOT NULL UNION SELECT traced FROM imgs WHERE traced IS NOT NULL UNION SELECT traced FROM profs),
  live_states AS (SELECT state AS id FROM impact_members WHERE stateset IN statesets),
  live_sets AS (
    SELECT id FROM statesets UNION SELECT id FROM maps
    UNION SELECT json_extract(j.value, '$[1]') FROM impact_sets s JOIN maps m ON s.id = m.id, json_each(s.items) j WHERE json_extract(j.value, '$[1]') IS NOT NULL
    UNION SELECT files FROM impact_states WHERE id IN live_states
  )`;

/** Per kind: how to count its stale rows and how to delete them, in an order no foreign key objects to. */
const STALE: [keyof ImpactStaleRows, string][] = [
  ['images', 'FROM impact_images WHERE image_id NOT IN (SELECT id FROM images)'],
  ['profiles', 'FROM impact_profiles WHERE name NOT IN (SELECT name FROM profiles)'],
  ['members', 'FROM impact_members WHERE stateset NOT IN statesets'],
  ['states', 'FROM impact_states WHERE id NOT IN live_states'],
  ['sets', 'FROM impact_sets WHERE id NOT IN live_sets'],
];

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
  /** [state, state set] pairs: the sets of package states holding these states. */
  members(states: readonly number[]): Promise<[number, number][]>;
  /** Every indexed image with its tags, in groups of images holding the same sets, from one snapshot. */
  groups(): Promise<ImpactImageGroup[]>;
  /** Path sets (and package maps) by id. */
  sets(ids: Iterable<number>): Promise<Map<number, ImpactSetItem[]>>;
  maps(ids: Iterable<number>): Promise<Map<number, ImpactPackageMap>>;
  /** Counts the rows nothing live reaches (aim repo fsck). */
  stale(): Promise<ImpactStaleRows>;
  /** Deletes the rows nothing live reaches (aim repo gc; removing an image does it in its transaction). */
  prune(): Promise<ImpactStaleRows>;
}

const digests = new WeakMap<object, string>();

function setDigest(items: object): { digest: string; json: string | undefined } {
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

const byPath = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** The SQLite implementation, over the catalog's own connection. */
export class SqliteImpactStore implements ImpactStore {
  private readonly stmts = new Map<string, Database.Statement>();

  constructor(private readonly db: Database.Database) {}

  /**
   * Creates the tables; an index of another version is dropped first (ensureImpactIndex refills
   * it), except version 3, which lacks only the rows' refs: those are added and filled in place,
   * since a rebuild re-reads every image.
   */
  migrate(): void {
    const version = () => this.db.prepare("SELECT value FROM meta WHERE key = 'impact_schema'").pluck().get() as string | undefined;
    if (version() === IMPACT_VERSION) {
      this.db.exec(IMPACT_SCHEMA);
      return;
    }
    this.db.transaction(() => {
      const found = version();
      if (found === IMPACT_VERSION) return;
      const upgrade = found === '3' && (this.db.prepare('PRAGMA table_info(impact_images)').all() as { name: string }[]).length > 0;
      // the triggers first: ALTER TABLE checks every trigger that names the table
      for (const t of IMPACT_TRIGGERS) this.db.exec(`DROP TRIGGER IF EXISTS ${t}`);
      if (upgrade) {
        this.db.exec('DROP INDEX IF EXISTS impact_images_groups');
        this.db.exec('DROP TABLE IF EXISTS impact_groups');
        this.db.exec('ALTER TABLE impact_images ADD COLUMN ref TEXT');
        this.db.exec(`UPDATE impact_images SET ref = ${ownRef}`);
        // from now on a profile's row is only ever current (see pending()): drop those that are not
        this.db.exec('DELETE FROM impact_profiles WHERE NOT EXISTS (SELECT 1 FROM profiles p WHERE p.name = impact_profiles.name AND p.updated_at = impact_profiles.updated_at AND p.image_id = impact_profiles.image_id)');
      } else {
        for (const t of IMPACT_TABLES) this.db.exec(`DROP TABLE IF EXISTS ${t}`);
        this.db.exec('DROP INDEX IF EXISTS impact_profiles_freshness');
      }
      this.db.exec(IMPACT_SCHEMA);
      if (upgrade) this.db.exec('INSERT INTO impact_groups SELECT kind, release, states, kept, traced, count(*) FROM impact_images GROUP BY kind, release, states, kept, traced');
      this.db.prepare("INSERT INTO meta(key, value) VALUES ('impact_schema', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value").run(IMPACT_VERSION);
    }).immediate();
  }

  private stmt(sql: string): Database.Statement {
    let s = this.stmts.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.stmts.set(sql, s);
    }
    return s;
  }

  /** The id of a set with these items, stored when new. `created` says whether it was. */
  private setId(items: object): { id: number; created: boolean } {
    const { digest, json } = setDigest(items);
    const found = this.stmt('SELECT id FROM impact_sets WHERE digest = ?').pluck().get(digest) as number | undefined;
    if (found !== undefined) return { id: found, created: false };
    return { id: Number(this.stmt('INSERT INTO impact_sets(digest, items) VALUES (?, ?)').run(digest, json ?? JSON.stringify(items)).lastInsertRowid), created: true };
  }

  private stateId(s: ImpactPackageState): number {
    const files = this.setId(s.files).id;
    const args = [s.package, s.arch, s.version, s.source, s.sourceVersion, files];
    const found = this.stmt('SELECT id FROM impact_states WHERE package = ? AND arch = ? AND version = ? AND source = ? AND source_version = ? AND files = ?').pluck().get(...args) as
      | number
      | undefined;
    if (found !== undefined) return found;
    return Number(this.stmt('INSERT INTO impact_states(package, arch, version, source, source_version, files) VALUES (?, ?, ?, ?, ?, ?)').run(...args).lastInsertRowid);
  }

  /** A package → paths map as a set of [package, path set] pairs. */
  private mapId(map: Map<string, string[]>): number {
    const pairs: [string, number][] = [];
    for (const [pkg, paths] of [...map].sort(([a], [b]) => byPath(a, b))) if (paths.length > 0) pairs.push([pkg, this.setId(paths).id]);
    return this.setId(pairs).id;
  }

  private stateSetId(states: readonly ImpactPackageState[]): number {
    const ids = [...new Set(states.map((s) => this.stateId(s)))].sort((a, b) => a - b);
    const { id, created } = this.setId(ids);
    if (created) {
      const insert = this.stmt('INSERT OR IGNORE INTO impact_members(state, stateset) VALUES (?, ?)');
      for (const s of ids) insert.run(s, id);
    }
    return id;
  }

  private addImageRow(imageId: string, row: { kind: string; goldId?: string; profile?: string; release?: string; states: number; kept?: number; traced?: number }): void {
    this.stmt('DELETE FROM impact_images WHERE image_id = ?').run(imageId);
    this.stmt(
      `INSERT INTO impact_images(image_id, kind, gold_id, profile, release, states, kept, traced, ref)
       VALUES (@id, @kind, @gold, @profile, @release, @states, @kept, @traced, ${refOf('@id', '@gold', '@profile')})`,
    ).run({ id: imageId, kind: row.kind, gold: row.goldId ?? null, profile: row.profile ?? null, release: row.release ?? null, states: row.states, kept: row.kept ?? null, traced: row.traced ?? null });
  }

  /** The union of what the profiles recorded on an image traced, as one map (undefined: no profile). */
  private goldTraced(imageId: string): number | undefined {
    const maps = this.stmt('SELECT traced FROM impact_profiles WHERE image_id = ?').pluck().all(imageId) as number[];
    if (maps.length === 0) return undefined;
    if (maps.length === 1) return maps[0];
    const union = new Map<string, Set<string>>();
    for (const m of this.mapsSync(maps).values()) {
      const sets = this.setsSync(m.values());
      for (const [pkg, set] of m) {
        let u = union.get(pkg);
        if (!u) union.set(pkg, (u = new Set()));
        for (const [p] of sets.get(set) ?? []) u.add(p);
      }
    }
    return this.mapId(new Map([...union].map(([k, v]) => [k, [...v].sort(byPath)])));
  }

  async putImage(imageId: string, index: ImageImpactIndex): Promise<void> {
    this.db.transaction(() => {
      this.addImageRow(imageId, { kind: index.kind, release: index.release, states: this.stateSetId(index.states), traced: this.goldTraced(imageId) });
    })();
  }

  async putSlim(imageId: string, index: SlimImpactIndex): Promise<void> {
    this.db.transaction(() => {
      const gold = this.stmt('SELECT release, states FROM impact_images WHERE image_id = ?').get(index.goldId) as { release: string | null; states: number } | undefined;
      if (!gold) throw new InternalError(`impact index: gold image ${index.goldId.slice(0, 12)} of slim image ${imageId.slice(0, 12)} is not indexed`);
      const traced = this.stmt('SELECT traced FROM impact_profiles WHERE name = ?').pluck().get(index.profile) as number | undefined;
      this.addImageRow(imageId, {
        kind: 'slim',
        goldId: index.goldId,
        profile: index.profile,
        release: gold.release ?? undefined,
        states: gold.states,
        kept: this.mapId(index.kept),
        traced,
      });
    })();
  }

  async putProfile(name: string, imageId: string, updatedAt: string, traced: Map<string, string[]>): Promise<void> {
    this.db.transaction(() => {
      // a profile re-run since this state was read is indexed by that run (or the next aim impact):
      // an older state is not stored, so every impact_profiles row is current (see pending())
      const current = this.stmt('SELECT image_id, updated_at FROM profiles WHERE name = ?').get(name) as { image_id: string; updated_at: string } | undefined;
      if (current && (current.updated_at !== updatedAt || current.image_id !== imageId)) return;
      const map = this.mapId(traced);
      this.stmt('DELETE FROM impact_profiles WHERE name = ?').run(name);
      this.stmt('INSERT INTO impact_profiles(name, image_id, updated_at, traced) VALUES (?, ?, ?, ?)').run(name, imageId, updatedAt, map);
      this.stmt("UPDATE impact_images SET traced = ? WHERE profile = ? AND kind = 'slim'").run(map, name);
      this.stmt('UPDATE impact_images SET traced = ? WHERE image_id = ?').run(this.goldTraced(imageId) ?? null, imageId);
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
    // Every impact_profiles row is of an existing profile at its current update (the triggers on
    // profiles drop a row when its profile changes or goes; putProfile stores no older state), so
    // as many rows as profiles means none is pending. Otherwise, which: answered from the
    // (name, updated_at) index, a profile's data is never read.
    const unindexed = this.stmt('SELECT (SELECT count(*) FROM profiles) - (SELECT count(*) FROM impact_profiles)').pluck().get() as number;
    const profiles =
      unindexed === 0
        ? []
        : (this.stmt(
            'SELECT p.name FROM profiles p INDEXED BY impact_profiles_freshness LEFT JOIN impact_profiles x ON x.name = p.name WHERE x.updated_at IS NULL OR x.updated_at <> p.updated_at ORDER BY p.name',
          )
            .pluck()
            .all() as string[]);
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

  async members(states: readonly number[]): Promise<[number, number][]> {
    // one statement whatever the count (the ids as one JSON array), the pairs as one JSON text:
    // a batch of advisories meets thousands, and rows into arrays convert slowly
    const json = this.stmt('SELECT json_group_array(json_array(state, stateset)) FROM impact_members WHERE state IN (SELECT value FROM json_each(?))')
      .pluck()
      .get(JSON.stringify([...new Set(states)])) as string;
    return JSON.parse(json) as [number, number][];
  }

  async groups(): Promise<ImpactImageGroup[]> {
    // The groups with their sizes (impact_groups, counted by triggers on impact_images), then every
    // image in the same order (the covering index impact_images_groups: a group's images are
    // consecutive, by n) as its stored ref (see refOf), one text per image: better-sqlite3 turns
    // single values into JS far faster than rows into arrays, and the fields are cut out of it as
    // slices, not copied. One read transaction keeps both statements on one snapshot. Counts that
    // do not add up to the images (an index the triggers did not keep) are counted again.
    const group = 'kind, release, states, kept, traced';
    type Row = [ImpactImageGroup['kind'], string | null, number, number | null, number | null, number];
    return this.db.transaction(() => {
      let rows = this.stmt(`SELECT ${group}, images FROM impact_groups ORDER BY ${group}`).raw().all() as Row[];
      const refs = this.stmt(`SELECT ref FROM impact_images ORDER BY ${group}, n`).pluck().all() as string[];
      if (rows.reduce((sum, r) => sum + r[5], 0) !== refs.length) {
        rows = this.stmt(`SELECT ${group}, count(*) FROM impact_images GROUP BY ${group} ORDER BY ${group}`).raw().all() as Row[];
      }
      let i = 0;
      return rows.map(([kind, release, states, kept, traced, count]) => {
        const images: ImpactImageRef[] = new Array<ImpactImageRef>(count);
        for (let j = 0; j < count; j++, i++) {
          const text = refs[i]!;
          const a = text.indexOf('\t');
          const b = text.indexOf('\t', a + 1);
          const c = text.indexOf('\t', b + 1);
          const tags = c < 0 ? text.slice(b + 1) : text.slice(b + 1, c);
          const ref: ImpactImageRef = { id: text.slice(0, a), tags: tags === '' ? [] : tags.includes('\n') ? tags.split('\n').sort() : [tags] };
          if (b > a + 1) ref.gold = text.slice(a + 1, b);
          if (c >= 0) ref.profile = text.slice(c + 1);
          images[j] = ref;
        }
        return { kind, release: release ?? undefined, states, kept: kept ?? undefined, traced: traced ?? undefined, images };
      });
    })();
  }

  /** The items of sets by id, in one statement whatever the count (the ids as one JSON array). */
  private items(ids: Iterable<number>): [number, string][] {
    const unique = [...new Set(ids)];
    if (unique.length === 0) return [];
    return this.stmt('SELECT id, items FROM impact_sets WHERE id IN (SELECT value FROM json_each(?))').raw().all(JSON.stringify(unique)) as [number, string][];
  }

  private setsSync(ids: Iterable<number>): Map<number, ImpactSetItem[]> {
    const out = new Map<number, ImpactSetItem[]>();
    for (const [id, json] of this.items(ids)) out.set(id, (JSON.parse(json) as (ImpactSetItem | string)[]).map((i) => (typeof i === 'string' ? [i] : i)));
    return out;
  }

  private mapsSync(ids: Iterable<number>): Map<number, ImpactPackageMap> {
    const out = new Map<number, ImpactPackageMap>();
    for (const [id, json] of this.items(ids)) out.set(id, new Map(JSON.parse(json) as [string, number][]));
    return out;
  }

  async stale(): Promise<ImpactStaleRows> {
    return this.db.transaction(() => {
      const out: ImpactStaleRows = { images: 0, profiles: 0, states: 0, members: 0, sets: 0 };
      for (const [kind, rows] of STALE) out[kind] = this.stmt(`${LIVE} SELECT count(*) ${rows}`).pluck().get() as number;
      return out;
    })();
  }

  async prune(): Promise<ImpactStaleRows> {
    return this.db.transaction(() => this.pruneNow()).immediate();
  }

  /** Deletes the stale rows; the caller holds a transaction (SqliteCatalog.removeImage's, or prune's). */
  pruneNow(): ImpactStaleRows {
    const out: ImpactStaleRows = { images: 0, profiles: 0, states: 0, members: 0, sets: 0 };
    for (const [kind, rows] of STALE) out[kind] = this.stmt(`${LIVE} DELETE ${rows}`).run().changes;
    return out;
  }

  async sets(ids: Iterable<number>): Promise<Map<number, ImpactSetItem[]>> {
    return this.setsSync(ids);
  }

  async maps(ids: Iterable<number>): Promise<Map<number, ImpactPackageMap>> {
    return this.mapsSync(ids);
  }
}
