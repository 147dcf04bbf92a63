/**
 * Applies a runtime state plan from the host to a materialised image: paths are resolved the way
 * the kernel would inside the image (symlinks followed in image coordinates, never out of it),
 * the final component is never followed, and content of the run-time mount points (/run, /tmp,
 * /dev, mounted fresh when the workload starts) goes to a seed tree copied onto those mounts.
 */
import { constants } from 'node:fs';
import { chmod, chown, lchown, lstat, mkdir, open, readdir, symlink, unlink } from 'node:fs/promises';
import { decodePath } from '../../lib/path-codec.js';
import { readLinkTarget, walkInImage, type WalkStep } from '../../lib/resolve-in-root.js';
import { DEFAULT_DIR_MODE, DEFAULT_FILE_MODE, describeAction, describeOrigin, type RuntimeAction, type RuntimePerms } from './plan.js';

export interface ApplyTarget {
  /** The materialised image root (realpath). */
  root: string;
  /** Where content of the mount points goes: SEED/run/…, SEED/tmp/… */
  seed: string;
  /** Top-level directories mounted fresh when the workload starts, with the mode of their mount. */
  mounts: Readonly<Record<string, number>>;
}

export interface ApplyResult {
  applied: number;
  /** One line per action that failed ("cannot create …: EEXIST"), never an error. */
  failed: string[];
  /** Mount points with seeded content. */
  seeded: string[];
}

const MAX_LINKS = 40;

class Walker {
  readonly seeded = new Set<string>();

  constructor(private readonly t: ApplyTarget) {}

  /** Host path (bytes) of a symlink-free image path. */
  host(path: string): Buffer {
    const top = path.split('/')[1] ?? '';
    if (top in this.t.mounts) return Buffer.concat([Buffer.from(this.t.seed), decodePath(path)]);
    return Buffer.concat([Buffer.from(this.t.root), decodePath(path)]);
  }

  /** Makes SEED/<mount> with the mount's mode (cp -a copies it onto the mount). */
  private async seedMount(top: string): Promise<void> {
    if (this.seeded.has(top)) return;
    await mkdir(Buffer.concat([Buffer.from(this.t.seed), Buffer.from(`/${top}`)]), { recursive: true });
    await chmod(Buffer.concat([Buffer.from(this.t.seed), Buffer.from(`/${top}`)]), this.t.mounts[top]!);
    this.seeded.add(top);
  }

  /**
   * The symlink-free image path of `path`'s parent directory, joined with its last name; missing
   * directories are created (0755, root) when `create`. Undefined when the way is blocked.
   */
  async parent(path: string, create: boolean): Promise<string | undefined> {
    const comps = path.split('/').filter((c) => c !== '');
    const name = comps.pop();
    if (name === undefined) return undefined;
    const done = await walkInImage(
      comps.join('/'),
      async (candidate): Promise<WalkStep> => {
        const c = candidate[0]!;
        if (candidate.length === 1 && c in this.t.mounts) {
          await this.seedMount(c);
          return { kind: 'dir' };
        }
        const host = this.host(`/${candidate.join('/')}`);
        const st = await lstat(host).catch(() => undefined);
        if (!st) {
          if (!create) return { kind: 'stop' };
          await mkdir(host, { mode: DEFAULT_DIR_MODE });
          return { kind: 'dir' };
        }
        if (st.isSymbolicLink()) return { kind: 'link', target: await readLinkTarget(host) };
        return st.isDirectory() ? { kind: 'dir' } : { kind: 'stop' };
      },
      MAX_LINKS,
    );
    return done && `/${[...done, name].join('/')}`;
  }
}

async function setPerms(host: Buffer, p: RuntimePerms, created: boolean, defaultMode: number): Promise<void> {
  if (!created && p.createOnly) return;
  if (created || p.uid !== undefined || p.gid !== undefined) await chown(host, p.uid ?? (created ? 0 : -1), p.gid ?? (created ? 0 : -1));
  const mode = p.mode ?? (created ? defaultMode : undefined);
  if (mode !== undefined) await chmod(host, mode);
}

async function adjustTree(host: Buffer, p: RuntimePerms, recursive: boolean): Promise<void> {
  const st = await lstat(host);
  if (st.isSymbolicLink()) return;
  if (p.uid !== undefined || p.gid !== undefined) await lchown(host, p.uid ?? -1, p.gid ?? -1);
  if (p.mode !== undefined) await chmod(host, p.mode);
  if (!recursive || !st.isDirectory()) return;
  for (const name of (await readdir(host, { encoding: 'buffer' })) as Buffer[]) {
    await adjustTree(Buffer.concat([host, Buffer.from('/'), name]), p, true);
  }
}

async function applyOne(w: Walker, a: RuntimeAction): Promise<void> {
  const path = await w.parent(a.path, a.kind !== 'adjust');
  if (path === undefined) {
    if (a.kind === 'adjust') return;
    throw new Error('a directory on the way is not a directory');
  }
  const host = w.host(path);
  const st = await lstat(host).catch(() => undefined);
  switch (a.kind) {
    case 'dir':
      if (st && !st.isDirectory()) throw new Error(`a ${st.isSymbolicLink() ? 'symlink' : 'non-directory'} is in the way`);
      if (!st) await mkdir(host, { mode: DEFAULT_DIR_MODE });
      await setPerms(host, a, !st, DEFAULT_DIR_MODE);
      return;
    case 'file': {
      if (st && !st.isFile()) throw new Error('a non-file is in the way');
      if (st && !a.truncate) return setPerms(host, a, false, DEFAULT_FILE_MODE);
      const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_NOFOLLOW | (st ? constants.O_TRUNC : constants.O_EXCL);
      const fh = await open(host, flags, DEFAULT_FILE_MODE);
      try {
        if (a.content !== undefined) await fh.writeFile(Buffer.from(a.content, 'base64'));
      } finally {
        await fh.close();
      }
      return setPerms(host, a, !st, DEFAULT_FILE_MODE);
    }
    case 'symlink':
      if (st && (!a.replace || st.isDirectory())) return;
      if (st) await unlink(host);
      await symlink(a.target, host);
      return;
    case 'adjust':
      if (st) await adjustTree(host, a, a.recursive);
      return;
  }
}

/**
 * Applies the actions in order. A failing action is reported in `failed` and the rest go on, as
 * systemd-tmpfiles does: a service that needs the path fails visibly later.
 */
export async function applyRuntimePlan(actions: readonly RuntimeAction[], target: ApplyTarget): Promise<ApplyResult> {
  const w = new Walker(target);
  let applied = 0;
  const failed: string[] = [];
  for (const a of actions) {
    try {
      await applyOne(w, a);
      applied++;
    } catch (e) {
      failed.push(`${describeAction(a)} (${describeOrigin(a.origin)}): ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  }
  return { applied, failed, seeded: [...w.seeded].sort() };
}
