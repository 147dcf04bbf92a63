import type { ImpactImageGroup, ImpactSetItem, ImpactStateRow, ImpactStore } from '../repository/catalog-impact.js';
import type { DebFile } from '../debian/deb-file.js';
import { contentKey, linkKey } from './impact-index.js';
import { evaluateTarget, type AdvisoryRef, type Update, type UpdateTarget } from './update.js';

/**
 * Impact of an update on every image of the repository, answered from the catalog's impact
 * index (repository/catalog-impact.ts): the package states the update's targets match, the
 * images holding them, what each slim image keeps of the changed files and what its profile
 * traced. Four verdicts: not affected; present (a gold image holds it) or present but not in the
 * slim image; kept but not used by the profile; kept and used.
 */

export type Verdict = 'not-affected' | 'present' | 'not-in-slim' | 'kept-not-used' | 'kept-and-used';

/** Most telling first. */
export const VERDICTS: readonly Verdict[] = ['kept-and-used', 'kept-not-used', 'not-in-slim', 'present', 'not-affected'];
const RANK: Record<Verdict, number> = { 'not-affected': 0, present: 1, 'not-in-slim': 1, 'kept-not-used': 2, 'kept-and-used': 3 };

export interface ChangedFile {
  path: string;
  /** content: modified, added or removed by the new package; package: a file of a package the update names (content unknown). */
  change: 'modified' | 'added' | 'removed' | 'package';
}

/** What a target changes in one installed package state; images holding the same state share it. */
export interface Change {
  key: string;
  binary: string;
  arch: string;
  source: string;
  installed: string;
  installedSource: string;
  fixed?: string;
  advisory?: string;
  /** content: the new files were compared with the installed ones; package: every file of the package counts as changed. */
  basis: 'content' | 'package';
  files: ChangedFile[];
  origin: string;
}

export interface PackageImpact {
  change: string;
  binary: string;
  source: string;
  installed: string;
  fixed?: string;
  advisory?: string;
  verdict: Verdict;
  /** Files the update changes in this package. */
  changed: number;
  /** Slim images: the changed files the image keeps. */
  kept?: string[];
  /** The changed files its profile traced (slim: among those kept; gold: by any profile recorded on it). */
  traced?: string[];
  note?: string;
}

export interface ImageRef {
  id: string;
  tags: string[];
  /** Slim images: the gold image and the profile they were made from. */
  gold?: string;
  profile?: string;
}

/**
 * Images with the same findings: the same verdict, the same affected packages with the same
 * changed, kept and traced files. A fleet of images built from a few bases falls into a few groups.
 */
export interface ImpactGroup {
  kind: 'gold' | 'slim' | 'other';
  /** The most telling verdict of its packages. */
  verdict: Verdict;
  /** A changed file is used: kept by a slim image and traced by its profile, or traced by a gold image's profile. */
  inUse: boolean;
  packages: PackageImpact[];
  images: ImageRef[];
}

export interface ImpactReport {
  update: { kind: Update['kind']; input: string; targets: number; advisories: AdvisoryRef[]; notes: string[] };
  /** Images per verdict, and how many use a changed file. */
  summary: { images: number; inUse: number } & Record<Verdict, number>;
  /** Every image once, in groups; the most telling verdict first, those in use first. */
  groups: ImpactGroup[];
  changes: Change[];
}

/** One entry per image, with its group's findings (for callers that want images, not groups). */
export function imageFindings(report: ImpactReport): (ImageRef & Omit<ImpactGroup, 'images'>)[] {
  return report.groups.flatMap(({ images, ...g }) => images.map((i) => ({ ...i, ...g })));
}

/** Files a new package changes against an installed state, by content. */
export function changedFiles(newFiles: readonly DebFile[], installed: readonly ImpactSetItem[]): ChangedFile[] {
  const byPath = new Map<string, ImpactSetItem>();
  for (const item of installed) {
    byPath.set(item[0], item);
    if (item[2] !== undefined) byPath.set(item[2], item);
  }
  const out: ChangedFile[] = [];
  const seen = new Set<string>();
  for (const f of newFiles) {
    const key = f.type === 'file' || f.type === 'hardlink' ? (f.content ? contentKey(f.content) : undefined) : f.type === 'symlink' ? linkKey(f.target ?? '') : undefined;
    if (key === undefined) continue;
    const item = byPath.get(f.path);
    if (!item) {
      out.push({ path: f.path, change: 'added' });
      continue;
    }
    seen.add(item[0]);
    if (item[1] !== key) out.push({ path: item[0], change: 'modified' });
  }
  for (const item of installed) if (!seen.has(item[0])) out.push({ path: item[0], change: 'removed' });
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

interface Hit {
  target: UpdateTarget;
  state: ImpactStateRow;
  change: Change;
  changedSet: Set<string>;
}

const releaseMatches = (t: UpdateTarget, image: ImpactImageGroup) => t.release === undefined || image.release === undefined || image.release === `debian ${t.release}`;

function intersect(items: readonly ImpactSetItem[] | undefined, set: ReadonlySet<string>): string[] {
  const out: string[] = [];
  for (const [p] of items ?? []) if (set.has(p)) out.push(p);
  return out;
}

/** Computes the impact of an update on every image indexed in `store` (run ensureImpactIndex first). */
export async function computeImpact(store: ImpactStore, update: Update): Promise<ImpactReport> {
  const notes = [...update.notes];
  const byName = { binary: new Map<string, UpdateTarget[]>(), source: new Map<string, UpdateTarget[]>() };
  for (const t of update.targets) {
    const m = byName[t.by];
    const list = m.get(t.name);
    if (list) list.push(t);
    else m.set(t.name, [t]);
  }
  const seenStates = new Set<number>();
  const states: ImpactStateRow[] = [];
  for (const s of [...(await store.statesBy('package', [...byName.binary.keys()])), ...(await store.statesBy('source', [...byName.source.keys()]))]) {
    if (seenStates.has(s.id)) continue;
    seenStates.add(s.id);
    states.push(s);
  }

  // Which installed states each target affects, and what it changes in them.
  const pending: { target: UpdateTarget; state: ImpactStateRow; fixed?: string }[] = [];
  for (const state of states) {
    const targets = [...(byName.binary.get(state.package) ?? []), ...(byName.source.get(state.source) ?? [])];
    for (const target of targets) {
      const r = evaluateTarget(target, { version: state.version, sourceVersion: state.sourceVersion, arch: state.arch });
      if (r.affected) pending.push({ target, state, ...(r.fixed ? { fixed: r.fixed } : {}) });
    }
  }
  const fileSets = await store.sets(pending.filter((p) => p.target.files).map((p) => p.state.files));
  const hits = new Map<number, Hit[]>();
  const changes: Change[] = [];
  let unchanged = 0;
  for (const p of pending) {
    const basis = p.target.files ? 'content' : 'package';
    const installedFiles = basis === 'content' ? (fileSets.get(p.state.files) ?? []) : undefined;
    const files: ChangedFile[] = installedFiles ? changedFiles(p.target.files!, installedFiles) : [];
    if (basis === 'content' && files.length === 0) {
      unchanged++;
      continue;
    }
    const change: Change = {
      key: `c${changes.length + 1}`,
      binary: p.state.package,
      arch: p.state.arch,
      source: p.state.source,
      installed: p.state.version,
      installedSource: p.state.sourceVersion,
      ...(p.fixed ? { fixed: p.fixed } : {}),
      ...(p.target.advisory ? { advisory: p.target.advisory.id } : {}),
      basis,
      files,
      origin: p.target.origin,
    };
    changes.push(change);
    const list = hits.get(p.state.id) ?? [];
    list.push({ target: p.target, state: p.state, change, changedSet: new Set(files.map((f) => f.path)) });
    hits.set(p.state.id, list);
  }
  if (unchanged > 0) notes.push(`${unchanged} installed package state(s) have an older version but exactly the files of the new package: not affected`);

  // Package-basis changes: every file of the package; the sets are loaded once per state.
  const packageBasis = [...hits.values()].flat().filter((h) => h.change.basis === 'package');
  const packageSets = await store.sets(packageBasis.map((h) => h.state.files));
  const perSet = new Map<number, { files: ChangedFile[]; set: Set<string> }>();
  for (const h of packageBasis) {
    let known = perSet.get(h.state.files);
    if (!known) {
      const items = packageSets.get(h.state.files) ?? [];
      known = { files: items.map(([path]) => ({ path, change: 'package' as const })), set: new Set(items.map(([path]) => path)) };
      perSet.set(h.state.files, known);
    }
    h.change.files = known.files;
    h.changedSet = known.set;
  }

  // The sets of package states holding an affected state, and what each set is hit by.
  const bySet = new Map<number, Hit[]>();
  for (const [state, set] of (await store.members([...hits.keys()])).sort((x, y) => x[0] - y[0])) {
    const list = bySet.get(set) ?? [];
    list.push(...(hits.get(state) ?? []));
    bySet.set(set, list);
  }
  const [rows, tags] = await Promise.all([store.groups(), store.tags()]);
  const hitRows = rows.filter((r) => bySet.has(r.states));
  const maps = await store.maps(new Set(hitRows.flatMap((r) => [r.kept, r.traced]).filter((x): x is number => x !== undefined)));
  const packages = new Set([...hits.values()].flat().map((h) => h.state.package));
  const pathSets = await store.sets([...maps.values()].flatMap((m) => [...m].filter(([pkg]) => packages.has(pkg)).map(([, set]) => set)));
  // Images share sets (slim images of one application keep the same files): each set is intersected with a change once.
  const memo = new Map<Change, Map<number, string[]>>();
  const changedIn = (map: number | undefined, h: Hit): string[] => {
    const set = map === undefined ? undefined : maps.get(map)?.get(h.change.binary);
    if (set === undefined) return [];
    let m = memo.get(h.change);
    if (!m) memo.set(h.change, (m = new Map()));
    let out = m.get(set);
    if (!out) m.set(set, (out = intersect(pathSets.get(set), h.changedSet)));
    return out;
  };

  const findingsOf = (r: ImpactImageGroup, list: Hit[]): Omit<ImpactGroup, 'images'> => {
    const f: Omit<ImpactGroup, 'images'> = { kind: r.kind, verdict: 'not-affected', inUse: false, packages: [] };
    for (const h of list) {
      if (!releaseMatches(h.target, r)) continue;
      const c = h.change;
      const p: PackageImpact = {
        change: c.key,
        binary: c.binary,
        source: c.source,
        installed: c.installed,
        ...(c.fixed ? { fixed: c.fixed } : {}),
        ...(c.advisory ? { advisory: c.advisory } : {}),
        verdict: 'present',
        changed: c.files.length,
      };
      const used = changedIn(r.traced, h);
      if (r.kind === 'slim') {
        const keptChanged = changedIn(r.kept, h);
        p.kept = keptChanged;
        if (r.traced !== undefined) p.traced = used.length === 0 ? [] : keptChanged.filter((x) => used.includes(x));
        else {
          p.traced = keptChanged;
          if (keptChanged.length > 0) p.note = 'what its profile used is not indexed, so every kept changed file counts as used';
        }
        p.verdict = keptChanged.length === 0 ? 'not-in-slim' : p.traced.length === 0 ? 'kept-not-used' : 'kept-and-used';
      } else if (used.length > 0) p.traced = used;
      if ((p.traced?.length ?? 0) > 0) f.inUse = true;
      if (RANK[p.verdict] > RANK[f.verdict]) f.verdict = p.verdict;
      f.packages.push(p);
    }
    return f;
  };

  // Rows that meet the same changes with the same kept and traced sets (different package sets,
  // the same affected states) have the same findings: one group.
  const groups = new Map<string, ImpactGroup>();
  const summary: ImpactReport['summary'] = { images: 0, inUse: 0, 'kept-and-used': 0, 'kept-not-used': 0, 'not-in-slim': 0, present: 0, 'not-affected': 0 };
  for (const r of rows) {
    const list = (bySet.get(r.states) ?? []).filter((h) => releaseMatches(h.target, r));
    const setOf = (map: number | undefined, h: Hit) => (map === undefined ? 'u' : (maps.get(map)?.get(h.change.binary) ?? '-'));
    const key = `${r.kind}|${list.map((h) => `${h.change.key}:${setOf(r.kept, h)}:${setOf(r.traced, h)}`).join(',')}`;
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { ...findingsOf(r, list), images: [] }));
    const f = g;
    for (const [, id, gold, profile] of r.images) {
      const ref: ImageRef = { id, tags: tags.get(id) ?? [] };
      if (gold !== null) ref.gold = gold;
      if (profile !== null) ref.profile = profile;
      g.images.push(ref);
    }
    summary.images += r.images.length;
    summary[f.verdict] += r.images.length;
    if (f.inUse) summary.inUse += r.images.length;
  }
  // groups meeting different sets with the same outcome (the changed files both keep) are one
  const merged = new Map<string, ImpactGroup>();
  for (const g of groups.values()) {
    const key = JSON.stringify([g.kind, g.verdict, g.inUse, g.packages]);
    const known = merged.get(key);
    if (known) known.images.push(...g.images);
    else merged.set(key, g);
  }
  const ordered = [...merged.values()].sort((a, b) => RANK[b.verdict] - RANK[a.verdict] || Number(b.inUse) - Number(a.inUse) || b.images.length - a.images.length);
  return {
    update: { kind: update.kind, input: update.input, targets: update.targets.length, advisories: update.advisories, notes },
    summary,
    groups: ordered,
    changes,
  };
}
