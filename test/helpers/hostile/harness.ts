import Database from 'better-sqlite3';
import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { lstat, mkdir, readFile, readdir, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runJs } from '../cli.js';
import { tempDir } from '../tmp.js';

/**
 * The hostile-input harness. A corpus is a list of cases, each building one input and saying
 * what aim must answer; `describeHostile` runs every case as a real CLI process against a shared
 * repository, and checks for each:
 * - the exit code and error code (and message), a one-line message, no secret in any output;
 * - nothing written outside the repository: a sentinel tree around the working directory and the
 *   host files that inputs point their symlinks at is compared before and after, and so is the
 *   case's own input;
 * - nothing read outside: the sentinel files hold a marker that must appear in no output and in no
 *   blob of the repository;
 * - the repository unchanged for refused inputs (files and catalog), fsck clean, and for accepted
 *   ones at most the bytes the case allows stored;
 * - wall time and peak RSS (of the CLI and its children: GNU time's %M) under the case's bounds.
 *   A watchdog kills a run that exceeds them by far, so a regression cannot take the machine.
 * Each case runs once; classes of cases live in test/helpers/hostile/<class>.ts.
 */

export interface HostileContext {
  /** A fresh directory for this case's input. */
  dir: string;
  /** A host file outside the repository and the input, holding `marker`: point symlinks here. */
  secret: string;
  /** A host directory outside (holds `secret`); writes through symlinks would land here. */
  hostDir: string;
  /** Text that must never appear in output or in the repository. */
  marker: string;
}

export interface HostileCase {
  /** Short and unique within its class. */
  name: string;
  /** The class, for the README table ("tar numbers", "OCI layout", …). */
  class: string;
  /** Builds the input; returns the path to import, or the whole argument list after `aim`. */
  make(ctx: HostileContext): Promise<string | { args: string[] }>;
  /** Expected exit code (0 for inputs aim must accept) and, for failures, error code(s) and message. */
  exitCode: number;
  code?: string | string[];
  message?: RegExp;
  /** Accepted inputs: the most bytes the repository may grow by (default 16 MiB). */
  maxStoredBytes?: number;
  /** Accepted inputs: more checks on the result (the parsed JSON document and the image's entries). */
  check?: (json: Record<string, unknown>, ctx: HostileContext & { repo: string; entries: Map<string, CatalogEntry> }) => Promise<void> | void;
  /** Bounds (defaults: 120 s, 600 MiB). */
  maxSeconds?: number;
  maxRssMiB?: number;
  /** Run without capabilities (setpriv), as an ordinary user. */
  unprivileged?: boolean;
  /** Paths that must not exist afterwards (where a write through the input would land). */
  mustNotExist?: (ctx: HostileContext) => string[];
}

export interface HostileRun {
  exitCode: number;
  json: Record<string, unknown> & { error?: { code: string; message: string; hint?: string } };
  stdout: string;
  stderr: string;
  seconds: number;
  rssMiB: number;
}

/** An entry as the catalog holds it. */
export interface CatalogEntry {
  path: string;
  type: string;
  size: number | null;
  blob: string | null;
  sparse: string | null;
  target: string | null;
}

/** The entries of an image, straight from the catalog (read-only). */
export function catalogEntries(repo: string, id: string): Map<string, CatalogEntry> {
  const db = new Database(join(repo, 'catalog.db'), { readonly: true, fileMustExist: true });
  try {
    const rows = db.prepare('SELECT path, type, size, blob, sparse, target FROM entries WHERE image_id = ?').all(id) as CatalogEntry[];
    return new Map(rows.map((r) => [r.path, r]));
  } finally {
    db.close();
  }
}

/** A blob's bytes. */
export const readBlob = (repo: string, hash: string) => readFile(join(repo, 'objects', 'sha256', hash.slice(0, 2), hash.slice(2)));

/** Cases of one class. */
export const inClass = (cls: string, cases: Omit<HostileCase, 'class'>[]): HostileCase[] => cases.map((c) => ({ ...c, class: cls }));

const DEFAULT_SECONDS = 120;
const DEFAULT_RSS_MIB = 600;

/** Every node under `root`: type, size, mode, mtime, content hash, link target. */
export async function snapshot(root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  // names as bytes: inputs may hold names that are not UTF-8
  const walk = async (dir: Buffer, rel: string) => {
    let names: Buffer[];
    try {
      names = ((await readdir(dir, { encoding: 'buffer' })) as Buffer[]).sort(Buffer.compare);
    } catch {
      return;
    }
    for (const name of names) {
      const p = Buffer.concat([dir, Buffer.from('/'), name]);
      const r = rel ? `${rel}/${name.toString('latin1')}` : name.toString('latin1');
      const st = await lstat(p);
      let what = `${st.mode.toString(8)} ${st.size} ${st.mtimeMs}`;
      if (st.isSymbolicLink()) what += ` -> ${(await readlink(p, { encoding: 'buffer' })).toString('latin1')}`;
      else if (st.isFile() && st.size <= 1 << 20) what += ` ${createHash('sha256').update(await readFile(p)).digest('hex')}`;
      out.set(r, what);
      if (st.isDirectory()) await walk(p, r);
    }
  };
  await walk(Buffer.from(root), '');
  return out;
}

function diff(before: Map<string, string>, after: Map<string, string>): string[] {
  const changes: string[] = [];
  for (const [k, v] of after) if (before.get(k) !== v) changes.push(`${before.has(k) ? 'changed' : 'added'}: ${k}`);
  for (const k of before.keys()) if (!after.has(k)) changes.push(`removed: ${k}`);
  return changes;
}

/** Peak RSS of a process tree so far, from /proc (the watchdog's view). */
function treeRss(pid: number): number {
  let kib = 0;
  const visit = (p: number) => {
    try {
      const status = readFileSync(`/proc/${p}/status`, 'utf8');
      kib += Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
      for (const c of readFileSync(`/proc/${p}/task/${p}/children`, 'utf8').trim().split(/\s+/).filter(Boolean)) visit(Number(c));
    } catch {
      // gone meanwhile
    }
  };
  visit(pid);
  return kib / 1024;
}

/** Runs `aim <args> --json` under GNU time, in `cwd`, with a watchdog on time and memory. */
export async function runMeasured(args: string[], options: { cwd: string; maxSeconds: number; maxRssMiB: number; unprivileged?: boolean; env?: Record<string, string> }): Promise<HostileRun> {
  const timeFile = join(tmpdir(), `aim-hostile-time-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}`);
  const pre = options.unprivileged ? ['setpriv', '--inh-caps=-all', '--ambient-caps=-all', '--bounding-set=-all', '--'] : [];
  const child = execa('/usr/bin/time', ['-o', timeFile, '-f', '%M %e', ...pre, process.execPath, runJs, ...args, '--json'], {
    cwd: options.cwd,
    reject: false,
    env: { ...process.env, ...options.env },
  });
  let killedFor: string | undefined;
  const watchdog = setInterval(() => {
    if (!child.pid) return;
    const rss = treeRss(child.pid);
    if (rss > options.maxRssMiB * 2) killedFor = `RSS ${Math.round(rss)} MiB`;
    if (killedFor) child.kill('SIGKILL');
  }, 200);
  const hardStop = setTimeout(() => {
    killedFor = `more than ${options.maxSeconds * 2} s`;
    child.kill('SIGKILL');
  }, options.maxSeconds * 2000);
  const r = await child;
  clearInterval(watchdog);
  clearTimeout(hardStop);
  if (killedFor) throw new Error(`aim ${args.join(' ')} was killed: ${killedFor}`);
  const [rssKiB, seconds] = (await readFile(timeFile, 'utf8')).trim().split('\n').pop()!.split(' ').map(Number);
  await rm(timeFile, { force: true });
  let json: HostileRun['json'];
  try {
    json = JSON.parse(String(r.stdout)) as HostileRun['json'];
  } catch {
    json = {} as HostileRun['json'];
  }
  return { exitCode: r.exitCode ?? -1, json, stdout: String(r.stdout), stderr: String(r.stderr), seconds: seconds!, rssMiB: rssKiB! / 1024 };
}

/** Files of the repository (but the catalog) with their sizes, and the images the catalog lists. */
async function repoState(repo: string): Promise<{ files: Map<string, number>; images: string[] }> {
  const files = new Map<string, number>();
  const walk = async (d: string) => {
    for (const name of (await readdir(d)).sort()) {
      const p = join(d, name);
      const st = await lstat(p);
      if (st.isDirectory()) await walk(p);
      else if (!/catalog\.db(-wal|-shm)?$/.test(name)) files.set(p.slice(repo.length), st.size);
    }
  };
  await walk(repo);
  const db = new Database(join(repo, 'catalog.db'), { readonly: true, fileMustExist: true });
  try {
    const images = (db.prepare('SELECT id FROM images ORDER BY id').all() as { id: string }[]).map((r) => r.id);
    return { files, images };
  } finally {
    db.close();
  }
}

const storedBytes = (s: { files: Map<string, number> }) => [...s.files.entries()].filter(([k]) => k.startsWith('/objects/')).reduce((n, [, v]) => n + v, 0);

/** Registers one vitest test per case, sharing one repository and sentinel tree per corpus. */
export function describeHostile(title: string, cases: HostileCase[]): void {
  describe(title, () => {
    let tmp: Awaited<ReturnType<typeof tempDir>>;
    let repo: string;
    let work: string;
    let sentinel: string;
    const marker = `aim-hostile-secret-${process.pid}-${Math.random().toString(36).slice(2)}`;
    let base: Omit<HostileContext, 'dir'>;
    let sentinelBefore: Map<string, string>;

    beforeAll(async () => {
      tmp = await tempDir('aim-hostile-');
      repo = join(tmp.dir, 'repo');
      work = join(tmp.dir, 'work');
      sentinel = join(tmp.dir, 'sentinel');
      const hostDir = join(sentinel, 'host');
      await mkdir(join(hostDir, 'dir'), { recursive: true });
      await mkdir(work);
      await writeFile(join(hostDir, 'secret'), `${marker}\n`);
      await writeFile(join(hostDir, 'dir', 'inner'), `${marker} inner\n`);
      await writeFile(join(work, 'notes'), 'the working directory of every run\n');
      await symlink(join(hostDir, 'secret'), join(work, 'link-to-secret'));
      base = { secret: join(hostDir, 'secret'), hostDir, marker };
      const init = await runMeasured(['repo', 'init', '--repo', repo], { cwd: work, maxSeconds: DEFAULT_SECONDS, maxRssMiB: DEFAULT_RSS_MIB });
      expect(init.exitCode, init.stderr).toBe(0);
      sentinelBefore = new Map([...(await snapshot(work)), ...[...(await snapshot(sentinel))].map(([k, v]) => [`sentinel/${k}`, v] as [string, string])]);
    });

    afterAll(async () => {
      if (!tmp) return;
      // once more for the whole corpus: fsck clean, no marker in any blob
      const fsck = await runMeasured(['repo', 'fsck', '--repo', repo], { cwd: work, maxSeconds: DEFAULT_SECONDS, maxRssMiB: DEFAULT_RSS_MIB });
      expect(fsck.exitCode, fsck.stdout + fsck.stderr).toBe(0);
      await tmp.cleanup();
    });

    it(`has cases with unique names (${cases.length})`, () => {
      expect(new Set(cases.map((c) => c.name)).size).toBe(cases.length);
    });

    cases.forEach((c, i) => {
      it(`${c.class}: ${c.name} → ${c.exitCode === 0 ? 'accepted' : [c.code].flat().join('|')}`, async () => {
        const dir = join(tmp.dir, 'inputs', String(i));
        await mkdir(dir, { recursive: true });
        const ctx: HostileContext = { ...base, dir };
        const made = await c.make(ctx);
        const args = typeof made === 'string' ? ['image', 'import', made] : made.args;
        const inputBefore = await snapshot(dir);
        const before = await repoState(repo);
        const r = await runMeasured([...args, '--repo', repo], {
          cwd: work,
          maxSeconds: c.maxSeconds ?? DEFAULT_SECONDS,
          maxRssMiB: c.maxRssMiB ?? DEFAULT_RSS_MIB,
          unprivileged: c.unprivileged,
        });
        const out = r.stdout + r.stderr;
        expect(r.exitCode, out).toBe(c.exitCode);
        expect(out, 'a secret of the host in the output').not.toContain(marker);
        expect(r.seconds, 'wall time').toBeLessThanOrEqual(c.maxSeconds ?? DEFAULT_SECONDS);
        expect(r.rssMiB, 'peak RSS (MiB)').toBeLessThanOrEqual(c.maxRssMiB ?? DEFAULT_RSS_MIB);
        if (c.exitCode !== 0) {
          expect(r.json.error, out).toBeDefined();
          expect([c.code].flat()).toContain(r.json.error!.code);
          expect(r.json.error!.message.split('\n'), 'a one-line message').toHaveLength(1);
          if (c.message) expect(r.json.error!.message).toMatch(c.message);
        }
        // nothing written outside the repository: not around the working directory, not where symlinks point, not into the input
        const sentinelAfter = new Map([...(await snapshot(work)), ...[...(await snapshot(sentinel))].map(([k, v]) => [`sentinel/${k}`, v] as [string, string])]);
        expect(diff(sentinelBefore, sentinelAfter), 'written outside the repository').toEqual([]);
        expect(diff(inputBefore, await snapshot(dir)), 'the input was changed').toEqual([]);
        for (const p of c.mustNotExist?.(ctx) ?? []) expect(existsSync(p), `${p} was written`).toBe(false);
        const after = await repoState(repo);
        if (c.exitCode !== 0) {
          expect(after.images, 'images after a refused input').toEqual(before.images);
          expect([...after.files], 'repository files after a refused input').toEqual([...before.files]);
        } else {
          expect(storedBytes(after) - storedBytes(before), 'bytes stored').toBeLessThanOrEqual(c.maxStoredBytes ?? 16 << 20);
          const grep = await execa('grep', ['-rl', marker, join(repo, 'objects')], { reject: false });
          expect(grep.stdout, 'a secret of the host stored in the repository').toBe('');
          const fsck = await runMeasured(['repo', 'fsck', '--repo', repo], { cwd: work, maxSeconds: DEFAULT_SECONDS, maxRssMiB: DEFAULT_RSS_MIB });
          expect(fsck.exitCode, fsck.stdout).toBe(0);
          await c.check?.(r.json, { ...ctx, repo, entries: catalogEntries(repo, String(r.json.id)) });
        }
        await rm(dir, { recursive: true, force: true });
        expect(existsSync(dir)).toBe(false);
      }, ((c.maxSeconds ?? DEFAULT_SECONDS) * 2 + 120) * 1000);
    });
  });
}
