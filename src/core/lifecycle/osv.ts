import { open, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { InputError, NotFoundError, errnoCode } from '../../lib/errors.js';
import { compareDebianVersions, parseDebianVersion } from '../debian/version.js';

/**
 * OSV advisories (https://ossf.github.io/osv-schema/) for the Debian ecosystem: `affected[]`
 * entries whose package ecosystem is "Debian" or "Debian:<release>" name a SOURCE package and give
 * ECOSYSTEM ranges (introduced / fixed / last_affected / limit events, Debian versions) and lists
 * of affected versions. Entries of other ecosystems are kept out and counted.
 */

export type OsvEvent = { introduced: string } | { fixed: string } | { last_affected: string } | { limit: string };

export interface AdvisoryPackage {
  /** Source package name. */
  name: string;
  /** Debian release (VERSION_ID, "12") the statement is limited to; undefined: any release. */
  release?: string;
  /** ECOSYSTEM ranges, each a list of events. */
  ranges: OsvEvent[][];
  /** Versions listed as affected. */
  versions: string[];
}

export interface Advisory {
  id: string;
  file: string;
  summary?: string;
  aliases: string[];
  modified: string;
  published?: string;
  withdrawn?: string;
  packages: AdvisoryPackage[];
  /** Ecosystems of affected[] entries left out (not Debian), with their count. */
  otherEcosystems: string[];
}

/** Largest advisory file read (real ones are a few KiB; the biggest OSV records are a few MiB). */
const MAX_FILE = 16 << 20;

const timestamp = z.string().refine((s) => /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(s) && !Number.isNaN(Date.parse(s)), 'an RFC 3339 time such as 2024-09-03T12:00:00Z');
const event = z.union([
  z.strictObject({ introduced: z.string().min(1) }),
  z.strictObject({ fixed: z.string().min(1) }),
  z.strictObject({ last_affected: z.string().min(1) }),
  z.strictObject({ limit: z.string().min(1) }),
]);
const OsvSchema = z.looseObject({
  schema_version: z.string().optional(),
  id: z.string().min(1),
  modified: timestamp,
  published: timestamp.optional(),
  withdrawn: timestamp.optional(),
  aliases: z.array(z.string()).optional(),
  summary: z.string().optional(),
  details: z.string().optional(),
  affected: z
    .array(
      z.looseObject({
        package: z.looseObject({ ecosystem: z.string().min(1), name: z.string().min(1), purl: z.string().optional() }).optional(),
        ranges: z
          .array(
            z.looseObject({
              type: z.enum(['GIT', 'SEMVER', 'ECOSYSTEM']),
              repo: z.string().optional(),
              events: z.array(event).min(1),
            }),
          )
          .optional(),
        versions: z.array(z.string()).optional(),
      }),
    )
    .optional(),
});

function badOsv(label: string, why: string, cause?: unknown): InputError {
  return new InputError('E_BAD_OSV', `${label}: not a valid OSV advisory: ${why}`, {
    hint: 'give an OSV JSON record (https://ossf.github.io/osv-schema/), as the Debian security tracker or osv.dev publish them',
    cause,
  });
}

const eventVersion = (e: OsvEvent): string => ('introduced' in e ? e.introduced : 'fixed' in e ? e.fixed : 'last_affected' in e ? e.last_affected : e.limit);

/** Parses OSV JSON text: one record, or an array of records. */
export function parseOsv(text: string, label: string): Advisory[] {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw badOsv(label, `it is not JSON (${(e as Error).message})`, e);
  }
  const records = Array.isArray(json) ? json : [json];
  if (records.length === 0) throw badOsv(label, 'the array holds no record');
  return records.map((r, i) => {
    const at = Array.isArray(json) ? `${label}[${i}]` : label;
    const parsed = OsvSchema.safeParse(r);
    if (!parsed.success) {
      const lines = parsed.error.issues.map((x) => `${x.path.length === 0 ? '(top)' : x.path.map(String).join('.')}: ${x.message}`);
      throw badOsv(at, `${lines.length} problem(s):\n${lines.join('\n')}`);
    }
    const o = parsed.data;
    const packages: AdvisoryPackage[] = [];
    const other = new Set<string>();
    for (const [k, a] of (o.affected ?? []).entries()) {
      if (!a.package) continue;
      const eco = /^Debian(?::(\d+))?$/.exec(a.package.ecosystem);
      if (!eco) {
        other.add(a.package.ecosystem);
        continue;
      }
      const ranges: OsvEvent[][] = [];
      for (const [j, range] of (a.ranges ?? []).entries()) {
        if (range.type !== 'ECOSYSTEM') continue;
        for (const [m, e] of range.events.entries()) {
          const v = eventVersion(e);
          if (!('introduced' in e && v === '0')) parseDebianVersion(v, `${at}: affected.${k}.ranges.${j}.events.${m}`);
        }
        ranges.push(range.events);
      }
      for (const [j, v] of (a.versions ?? []).entries()) parseDebianVersion(v, `${at}: affected.${k}.versions.${j}`);
      packages.push({ name: a.package.name, ...(eco[1] ? { release: eco[1] } : {}), ranges, versions: a.versions ?? [] });
    }
    const adv: Advisory = { id: o.id, file: label, aliases: o.aliases ?? [], modified: o.modified, packages, otherEcosystems: [...other].sort() };
    if (o.summary !== undefined) adv.summary = o.summary;
    if (o.published !== undefined) adv.published = o.published;
    if (o.withdrawn !== undefined) adv.withdrawn = o.withdrawn;
    return adv;
  });
}

/** Reads an OSV file (bounded in size). */
export async function readOsvFile(path: string): Promise<Advisory[]> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') throw new NotFoundError(`${path} does not exist`, { cause: e });
    throw e;
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new InputError('E_NOT_A_FILE', `${path} is not a regular file`);
    if (st.size > MAX_FILE) throw badOsv(path, `it is ${st.size} bytes, more than an advisory (${MAX_FILE} bytes at most)`);
    const buf = Buffer.alloc(st.size);
    const { bytesRead } = await fh.read(buf, 0, st.size, 0);
    return parseOsv(buf.subarray(0, bytesRead).toString('utf8'), path);
  } finally {
    await fh.close();
  }
}

/** The .json files under a directory (subdirectories included, symlinks not followed), sorted. */
export async function listJsonFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string, depth: number) => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory() && depth < 8) await walk(p, depth + 1);
      else if (e.isFile() && e.name.endsWith('.json')) out.push(p);
    }
  };
  await walk(dir, 0);
  return out.sort();
}

/**
 * Reads every advisory in a directory; with `since`, only those modified or published at or
 * after it. Withdrawn advisories are left out.
 */
export async function readAdvisoryDir(dir: string, since?: Date): Promise<{ advisories: Advisory[]; files: number; withdrawn: number; older: number }> {
  const files = await listJsonFiles(dir);
  const advisories: Advisory[] = [];
  let withdrawn = 0;
  let older = 0;
  for (const f of files) {
    for (const a of await readOsvFile(f)) {
      if (a.withdrawn !== undefined) {
        withdrawn++;
        continue;
      }
      if (since && Date.parse(a.modified) < since.getTime() && (a.published === undefined || Date.parse(a.published) < since.getTime())) {
        older++;
        continue;
      }
      advisories.push(a);
    }
  }
  return { advisories, files: files.length, withdrawn, older };
}

/**
 * Whether `version` (a source version) is affected, by OSV's evaluation: per ECOSYSTEM range,
 * the events in version order ("0" first); an introduced at or below the version makes it
 * affected, a fixed at or below it, a last_affected or a limit below it, not; or the version is
 * listed. `fixed`: the lowest fixed event above the version in a range that affects it.
 */
export function evaluateAdvisory(pkg: Pick<AdvisoryPackage, 'ranges' | 'versions'>, version: string): { affected: boolean; fixed?: string } {
  const cmp = (a: string, b: string) => (a === '0' ? (b === '0' ? 0 : -1) : b === '0' ? 1 : compareDebianVersions(a, b));
  let fixed: string | undefined;
  let affected = false;
  for (const events of pkg.ranges) {
    const sorted = [...events].sort((a, b) => cmp(eventVersion(a), eventVersion(b)));
    let inRange = false;
    for (const e of sorted) {
      const v = eventVersion(e);
      if ('introduced' in e) {
        if (cmp(version, v) >= 0) inRange = true;
      } else if ('fixed' in e) {
        if (cmp(version, v) >= 0) inRange = false;
      } else if (cmp(version, v) > 0 || ('limit' in e && cmp(version, v) === 0)) inRange = false;
    }
    if (!inRange) continue;
    affected = true;
    const next = sorted.find((e) => 'fixed' in e && cmp(eventVersion(e), version) > 0);
    if (next && (fixed === undefined || cmp(eventVersion(next), fixed) < 0)) fixed = eventVersion(next);
  }
  if (!affected && pkg.versions.some((v) => compareDebianVersions(v, version) === 0)) affected = true;
  return fixed === undefined ? { affected } : { affected, fixed };
}
