import { resolveImagePath } from '../analyze/resolve.js';
import { normaliseListedPath } from '../analyze/package.js';
import type { Entry } from '../model/entry.js';
import { canonicalImagePath } from '../runtime/image-source.js';
import { describeAction, describeOrigin } from '../runtime/plan.js';
import { compileGlob, matchesGlob, rebaseGlob } from './glob.js';
import type { Closure, Reason } from './types.js';

/** Why a path is kept or dropped, in sentences (`aim profile --explain <path>`). */
export interface Explanation {
  path: string;
  kept: boolean;
  /** The entry the path names when it goes through symlinked directories (/lib/x → /usr/lib/x). */
  entry?: string;
  /** One sentence per reason, each followed back to its seed. */
  reasons: string[];
  /** The drop glob (or "mount point /run") that removes the path. */
  dropBy?: string;
  /** Owning packages, when owners were given. */
  packages?: string[];
  /** True when the slim image's runtime state plan creates the path before the workload starts. */
  created?: boolean;
}

export interface ExplainOptions {
  owners?: ReadonlyMap<string, string[]>;
}

/** Longest chain followed back towards a seed. */
const MAX_CHAIN = 24;

export function explainPath(closure: Closure, entries: ReadonlyMap<string, Entry>, path: string, options: ExplainOptions = {}): Explanation {
  const out = explainEntry(closure, entries, path, options);
  // Runtime state is made, not copied: say so first, whatever the gold image has there.
  const canonical = canonicalImagePath(entries, out.path);
  const planned = (closure.runtime?.actions ?? []).filter((a) => a.path === canonical);
  if (planned.length > 0) {
    out.created = true;
    out.reasons.unshift(
      ...planned.map((a) => `${out.path} is made before the workload starts (by aim's init at boot, and in the profile sandbox): ${describeAction(a)}, from ${describeOrigin(a.origin)}`),
    );
  }
  return out;
}

function explainEntry(closure: Closure, entries: ReadonlyMap<string, Entry>, path: string, options: ExplainOptions): Explanation {
  const p = normaliseListedPath(path);
  const named = resolveImagePath(entries, p, { followFinal: false }) ?? p;
  const key = closure.kept.has(p) || closure.dropped.has(p) || closure.missing.has(p) ? p : named;
  const out: Explanation = { path: p, kept: closure.kept.has(key), reasons: [] };
  if (key !== p) out.entry = key;
  const packages = options.owners?.get(key);
  if (packages && packages.length > 0) out.packages = [...packages];
  const alias = key !== p ? [`${p} is ${key}, reached through symlinked directories`] : [];

  const kept = closure.kept.get(key);
  if (kept) {
    out.reasons.push(...alias, ...kept.map((r) => `${key} ${describe(closure, key, r, entries)}`));
    const more = closure.moreReasons.get(key) ?? 0;
    if (more > 0) out.reasons.push(`… and ${more} more reason(s) of the same kinds`);
    const glob = dropGlobMatching(closure, entries, key);
    if (glob !== undefined) {
      out.reasons.push(`${key} matches drop glob ${glob}, but drop globs never remove what the seeds need, nor the directories and symlinks leading to kept paths`);
    }
    return out;
  }

  const dropped = closure.dropped.get(key);
  if (dropped) {
    out.dropBy = dropped.by;
    out.reasons.push(
      ...alias,
      dropped.by.startsWith('mount point ')
        ? `${key} is content of the run-time ${dropped.by}: the slim image mounts it, the gold image's copy is not kept`
        : `${key} is dropped by drop glob ${dropped.by}`,
      ...dropped.reasons.map((r) => `without the drop rule it would be kept: ${key} ${describe(closure, key, r, entries)}`),
    );
    return out;
  }

  const missing = closure.missing.get(p) ?? closure.missing.get(key);
  if (missing) {
    out.reasons.push(...missing.map((r) => `${p} is not in the image, but ${p} ${describe(closure, p, r, entries)}`));
    return out;
  }

  if (!entries.has(key)) {
    out.reasons.push(`${p} is not in the image`);
    return out;
  }
  const glob = dropGlobMatching(closure, entries, key);
  if (glob !== undefined) {
    out.dropBy = glob;
    out.reasons.push(...alias, `${key} matches drop glob ${glob} (and nothing the seeds need reaches it)`);
    return out;
  }
  out.reasons.push(...alias, `${key} is not needed: no seed, dependency, package rule or essential reaches it`);
  return out;
}

/**
 * "is DT_NEEDED by /usr/sbin/nginx (traced: execve)", following `of` back to a seed. With the
 * image's entries, an `of` written through symlinked directories is followed to its entry too.
 */
export function describe(closure: Closure, path: string, reason: Reason, entries?: ReadonlyMap<string, Entry>): string {
  const of = 'of' in reason ? reason.of : undefined;
  if (of === undefined) return terminal(reason);
  return `${relation(path, reason)} ${of}${tail(closure, entries, of, new Set([path]), 0)}`;
}

function tail(closure: Closure, entries: ReadonlyMap<string, Entry> | undefined, path: string, visited: Set<string>, depth: number): string {
  let key = path;
  if (!closure.kept.has(key) && !closure.missing.has(key) && !closure.dropped.has(key) && entries) {
    key = resolveImagePath(entries, path, { followFinal: false }) ?? path;
  }
  const keptReasons = closure.kept.get(key);
  const reasons = keptReasons ?? closure.missing.get(key) ?? closure.dropped.get(key)?.reasons;
  const r = reasons?.[0];
  if (!r) return '';
  const note = keptReasons ? '' : closure.missing.has(key) ? '; not in the image' : '; dropped';
  const of = 'of' in r ? r.of : undefined;
  if (of === undefined) return ` (${label(r)}${note})`;
  if (visited.has(of) || depth >= MAX_CHAIN) return ` (…${note})`;
  visited.add(path);
  return `${note === '' ? '' : ` (${note.slice(2)})`}, which ${relation(key, r)} ${of}${tail(closure, entries, of, visited, depth + 1)}`;
}

function basename(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

/** The verb phrase linking `path` to `reason.of`. */
function relation(path: string, reason: Reason): string {
  switch (reason.kind) {
    case 'needed':
      return basename(path) === reason.soname ? 'is DT_NEEDED by' : `is DT_NEEDED as ${reason.soname} by`;
    case 'interp':
      return 'is the PT_INTERP (dynamic loader, mapped by the kernel at execve) of';
    case 'preload':
      return 'is preloaded into every program by';
    case 'shebang':
      return 'is the "#!" interpreter of';
    case 'symlink':
      return 'is a symlink on the way to';
    case 'parent':
      return 'is a directory on the way to';
    case 'hardlink':
      return 'holds the content of hardlink';
    case 'config':
      return 'is configuration read by';
    case 'nss':
      return reason.db !== undefined
        ? `is the ${reason.db} database of NSS service "${reason.module}", read by`
        : `is the NSS module of service "${reason.module}" (named in /etc/nsswitch.conf), loaded by`;
    case 'gconv':
      return 'is gconv configuration or module, loaded by iconv in';
    case 'ld-cache':
      return 'is the library cache read by';
    case 'tls-ca':
      return 'holds CA certificates for';
    default:
      return `is kept (${reason.kind}) for`;
  }
}

/** Short label of a reason that starts a chain, shown in parentheses. */
function label(reason: Reason): string {
  switch (reason.kind) {
    case 'traced':
      return `traced: ${reason.syscall}${reason.pid === undefined ? '' : ` by pid ${reason.pid}`}`;
    case 'entrypoint':
      return 'entrypoint';
    case 'tzdata':
      return 'time zone data';
    case 'user':
      return `user '${reason.name}'`;
    case 'group':
      return `group '${reason.name}'`;
    case 'tmpfiles':
      return `tmpfiles.d line ${reason.line}, creating ${reason.creates}`;
    case 'runtime':
      return `runtime state from ${reason.by}`;
    case 'package':
      return `package ${reason.name}, kept whole`;
    case 'glob':
      return `keep glob ${reason.pattern}`;
    case 'module-tree':
      return `module tree ${reason.root}, rule ${reason.pattern}`;
    case 'mountpoint':
      return 'run-time mount point';
    case 'nss':
      return `NSS service ${reason.module}`;
    case 'gconv':
      return 'gconv';
    case 'ld-cache':
      return 'ld.so cache';
    case 'tls-ca':
      return 'CA certificates';
    case 'config':
      return `configuration ${reason.file}`;
    default:
      return reason.kind;
  }
}

/** A whole sentence body for a reason without `of`. */
function terminal(reason: Reason): string {
  switch (reason.kind) {
    case 'traced':
      if (reason.syscall === 'chdir') return `is a directory the workload chdir'd into (${label(reason)})`;
      if (reason.syscall === 'chroot') return `is a directory the workload chroot'ed into (${label(reason)})`;
      return `is used by the traced workload (${label(reason)})`;
    case 'entrypoint':
      return 'is a declared entrypoint';
    case 'tzdata':
      return 'is time zone data (/etc/localtime)';
    case 'user':
      if (reason.why === undefined) return `holds the passwd/group entries of user ${reason.name}, whom the workload runs as`;
      return `holds the passwd/group/shadow entries of user '${reason.name}', ${reason.why}`;
    case 'group':
      return `holds the group/gshadow entries of group '${reason.name}', ${reason.why}`;
    case 'tmpfiles':
      return `is the tmpfiles.d file whose line ${reason.line} creates ${reason.creates}, which the workload uses`;
    case 'runtime':
      return `is made before the workload starts by ${reason.by}; kept as the gold image has it`;
    case 'package':
      return `belongs to package ${reason.name}, kept whole by rule`;
    case 'glob':
      return `matches keep glob ${reason.pattern}`;
    case 'module-tree':
      return `is in the interpreter module tree ${reason.root} (rule ${reason.pattern})`;
    case 'mountpoint':
      return 'is a run-time mount point, kept as a directory';
    default:
      return `is kept (${label(reason)})`;
  }
}

function dropGlobMatching(closure: Closure, entries: ReadonlyMap<string, Entry>, path: string): string | undefined {
  const isDir = entries.get(path)?.type === 'dir';
  for (const pattern of closure.dropGlobs) {
    const g = compileGlob(pattern);
    const dir = resolveImagePath(entries, g.literalDir);
    const variants = dir === undefined || dir === g.literalDir ? [g] : [g, rebaseGlob(g, dir)];
    if (variants.some((v) => matchesGlob(v, path) && (!v.dirOnly || isDir))) return pattern;
  }
  return undefined;
}
