import { ConfigError } from '../../lib/errors.js';
import type { Reporter } from '../../lib/reporter.js';
import type { Repository } from '../repository/repository.js';
import { computeImpact, type ImpactReport } from './impact.js';
import { ensureImpactIndex } from './impact-indexer.js';
import { readAdvisoryDir } from './osv.js';
import { addAdvisories, readUpdate, type Update } from './update.js';

export interface ImpactRequest {
  /** A .deb, a folder of .debs, a Packages index, an OSV file or PACKAGE=VERSION. */
  update?: string;
  /** A folder of OSV advisories. */
  advisories?: string;
  /** Only advisories modified or published at or after this time. */
  since?: Date;
}

/** "2024-09-01" or an RFC 3339 time; a date alone is its midnight UTC. */
export function parseSince(text: string): Date {
  const ok = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2}))?$/.test(text);
  const t = ok ? Date.parse(text.length === 10 ? `${text}T00:00:00Z` : text) : Number.NaN;
  if (Number.isNaN(t)) throw new ConfigError(`--since "${text}" is not a date`, { hint: 'give a date (2024-09-01) or an RFC 3339 time (2024-09-01T12:00:00Z)' });
  return new Date(t);
}

/** Reads the update (or the advisories of a folder), brings the impact index up to date, and computes the impact. */
export async function runImpact(repo: Repository, req: ImpactRequest, reporter: Reporter): Promise<ImpactReport & { indexed: { images: number; profiles: number } }> {
  if ((req.update === undefined) === (req.advisories === undefined)) {
    throw new ConfigError(req.update === undefined ? 'nothing to analyse: give an UPDATE, or --advisories DIR' : 'give an UPDATE or --advisories DIR, not both');
  }
  if (req.since && req.advisories === undefined) throw new ConfigError('--since selects advisories of a folder: give --advisories DIR too');
  let update: Update;
  if (req.update !== undefined) update = await readUpdate(req.update);
  else {
    const dir = await readAdvisoryDir(req.advisories!, req.since);
    update = { kind: 'osv', input: req.advisories!, targets: [], advisories: [], notes: [] };
    addAdvisories(update, dir.advisories);
    if (dir.files === 0) update.notes.push(`${req.advisories} holds no .json file`);
    if (dir.older > 0) update.notes.push(`${dir.older} advisory(ies) modified and published before ${req.since!.toISOString().replace('T00:00:00.000Z', '')}: left out`);
    if (dir.withdrawn > 0) update.notes.push(`${dir.withdrawn} withdrawn advisory(ies): left out`);
  }
  reporter.emit({ type: 'stage', stage: 'impact', status: 'start', detail: `${update.targets.length} package target(s) from ${update.kind} ${update.input}` });
  const indexed = await ensureImpactIndex(repo, reporter);
  const report = await computeImpact(repo.catalog.impact, update);
  reporter.emit({ type: 'stage', stage: 'impact', status: 'done', detail: `${report.summary.images} image(s)` });
  return { ...report, indexed };
}
