/**
 * Runtime state as a booted system has it before a service starts: what systemd-tmpfiles creates
 * from tmpfiles.d, and what systemd creates for the service's RuntimeDirectory= and friends. One
 * pure plan (a list of actions) that the profile sandbox and aim's init both apply.
 */
import { expandSpecifiers, type TmpfilesLine } from './tmpfiles.js';
import { serviceRuntime, type UnitFile } from './unit-file.js';

/** Where an action comes from. */
export type RuntimeOrigin =
  | { kind: 'tmpfiles'; file: string; line: number }
  | { kind: 'unit'; unit: string; setting: string };

/** Mode and owner; absent fields: the default for a new path, unchanged for an existing one. */
export interface RuntimePerms {
  mode?: number;
  uid?: number;
  gid?: number;
  /** Names of uid and gid, when the image's passwd/group have them. */
  user?: string;
  group?: string;
  /** Mode and owner are applied only when the path is created. */
  createOnly?: boolean;
}

export type RuntimeAction =
  /** Create the directory (parents 0755 root) unless it exists; apply perms either way. */
  | ({ kind: 'dir'; path: string; origin: RuntimeOrigin } & RuntimePerms)
  /** Create the file unless it exists (`truncate`: rewrite it even then) with `content` (base64). */
  | ({ kind: 'file'; path: string; content?: string; truncate: boolean; origin: RuntimeOrigin } & RuntimePerms)
  /** Create the symlink unless something is there (`replace`: unless a directory is there). */
  | { kind: 'symlink'; path: string; target: string; replace: boolean; origin: RuntimeOrigin }
  /** Change mode and owner of an existing path (and, `recursive`, everything below it). */
  | ({ kind: 'adjust'; path: string; recursive: boolean; origin: RuntimeOrigin } & RuntimePerms);

export interface RuntimeSkip {
  origin: RuntimeOrigin;
  reason: string;
  /** Worth a warning: the line asks for state aim does not create. */
  warn: boolean;
}

export interface RuntimePlan {
  /** In the order to apply: parents before children, creation before adjustment. */
  actions: RuntimeAction[];
  /** Units whose directories the plan creates. */
  units: string[];
  /** tmpfiles.d files read, in order. */
  tmpfiles: string[];
  skipped: RuntimeSkip[];
}

export interface NamedId {
  name: string;
  id: number;
}

export interface RuntimeInputs {
  /** The tmpfiles.d files in force, in the order systemd reads them, parsed. */
  tmpfiles: { file: string; lines: TmpfilesLine[] }[];
  /** The workload's units (drop-ins merged). */
  units: { name: string; unit: UnitFile }[];
  /** The image's users (with their primary group) and groups. */
  users: { name: string; uid: number; gid: number }[];
  groups: { name: string; gid: number }[];
  /** The path with its directories resolved through the image's symlinks (the last component kept). */
  canonical?: (path: string) => string;
}

export const DEFAULT_DIR_MODE = 0o755;
export const DEFAULT_FILE_MODE = 0o644;

/** Kernel file systems: nothing there is created, they are mounted fresh. */
const KERNEL_FS = /^\/(proc|sys)(\/|$)/;

const NOT_APPLIED: Record<string, [string, boolean]> = {
  w: ['writes to an existing file (mostly in /proc or /sys): not applied', false],
  x: ['excludes a path from clean-up: nothing to create', false],
  X: ['excludes a path from clean-up: nothing to create', false],
  r: ['removes a path: nothing to create', false],
  R: ['removes a tree: nothing to create', false],
  a: ['sets ACLs: not applied', false],
  A: ['sets ACLs: not applied', false],
  h: ['sets file attributes: not applied', false],
  H: ['sets file attributes: not applied', false],
  c: ['creates a character device: not applied', true],
  b: ['creates a block device: not applied', true],
  p: ['creates a FIFO: not applied', true],
  C: ['copies a tree: not applied', true],
};

/** Normalises an absolute path lexically; undefined for relative paths or paths with "..". */
function normalisePath(path: string): string | undefined {
  if (!path.startsWith('/')) return undefined;
  const parts = path.split('/').filter((c) => c !== '' && c !== '.');
  if (parts.includes('..')) return undefined;
  return `/${parts.join('/')}`;
}

/** Looks up a user or group given by name or number. */
function resolveId(list: NamedId[], who: string): NamedId | undefined {
  if (/^\d+$/.test(who)) return list.find((u) => u.id === Number(who)) ?? { name: '', id: Number(who) };
  return list.find((u) => u.name === who);
}

/** Creation kinds, ordered before adjustment on the same path. */
const rank = (a: RuntimeAction) => (a.kind === 'adjust' ? 1 : 0);

/**
 * The runtime state plan: tmpfiles.d lines first (the first line for a path wins, as in
 * systemd-tmpfiles), then the units' directories, which take over a path a line also creates
 * (systemd applies them when the service starts, after boot). Lines aim cannot apply are listed
 * in `skipped`, never errors.
 */
export function planRuntimeState(inputs: RuntimeInputs): RuntimePlan {
  const canonical = inputs.canonical ?? ((p: string) => p);
  const skipped: RuntimeSkip[] = [];
  const creates = new Map<string, RuntimeAction>();
  const adjusts = new Map<string, RuntimeAction>();
  const users: NamedId[] = inputs.users.map((u) => ({ name: u.name, id: u.uid }));
  const groups: NamedId[] = inputs.groups.map((g) => ({ name: g.name, id: g.gid }));
  const add = (a: RuntimeAction, replace = false) => {
    const map = a.kind === 'adjust' ? adjusts : creates;
    if (replace || !map.has(a.path)) map.set(a.path, a);
  };

  for (const { file, lines } of inputs.tmpfiles) {
    for (const line of lines) {
      const origin: RuntimeOrigin = { kind: 'tmpfiles', file, line: line.line };
      const skip = (reason: string, warn: boolean) => skipped.push({ origin, reason, warn });
      const action = lineAction(line, origin, users, groups, skip);
      if (!action) continue;
      const path = normalisePath(action.path);
      if (path === undefined) {
        skip(`path ${action.path} is not absolute and normalised`, true);
        continue;
      }
      if (KERNEL_FS.test(path)) {
        skip(`${path} is on a kernel file system: not applied`, false);
        continue;
      }
      add({ ...action, path: canonical(path) });
    }
  }

  for (const { name, unit } of inputs.units) {
    const rt = serviceRuntime(unit, name);
    for (const p of rt.problems) skipped.push({ origin: { kind: 'unit', unit: name, setting: 'Service' }, reason: p, warn: true });
    if (rt.directories.length === 0) continue;
    let owner: Pick<RuntimePerms, 'uid' | 'gid' | 'user' | 'group'> = {};
    if (rt.dynamicUser) {
      skipped.push({ origin: { kind: 'unit', unit: name, setting: 'DynamicUser' }, reason: 'DynamicUser= is not supported: the directories are owned by root', warn: true });
    } else if (rt.user !== undefined) {
      const u = resolveId(users, rt.user);
      const userGid = u && inputs.users.find((x) => x.uid === u.id)?.gid;
      const g = rt.group !== undefined ? resolveId(groups, rt.group) : userGid !== undefined ? (groups.find((x) => x.id === userGid) ?? { name: '', id: userGid }) : undefined;
      if (!u) skipped.push({ origin: { kind: 'unit', unit: name, setting: 'User' }, reason: `user ${rt.user} is not in the image's /etc/passwd: the directories are owned by root`, warn: true });
      else if (!g) skipped.push({ origin: { kind: 'unit', unit: name, setting: 'Group' }, reason: `group ${rt.group ?? u.name} is not in the image's /etc/group: the directories are owned by root`, warn: true });
      else owner = withNames({ uid: u.id, gid: g.id, user: u.name, group: g.name });
    } else if (rt.group !== undefined) {
      const g = resolveId(groups, rt.group);
      if (g) owner = withNames({ uid: 0, gid: g.id, user: 'root', group: g.name });
    }
    for (const d of rt.directories) {
      const origin: RuntimeOrigin = { kind: 'unit', unit: name, setting: d.setting };
      // ConfigurationDirectory= stays root's; the others belong to the service's user.
      const perms = d.setting === 'ConfigurationDirectory' ? { uid: 0, gid: 0, user: 'root', group: 'root' } : owner;
      const path = canonical(d.path);
      add({ kind: 'dir', path, mode: d.mode, ...perms, origin }, true);
      for (const link of d.links) add({ kind: 'symlink', path: canonical(link), target: path, replace: false, origin }, true);
    }
  }

  const actions = [...creates.values(), ...adjusts.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : rank(a) - rank(b)));
  return {
    actions,
    units: inputs.units.map((u) => u.name),
    tmpfiles: inputs.tmpfiles.map((t) => t.file),
    skipped,
  };
}

/** Drops empty names (numeric ids the image does not name). */
function withNames(p: RuntimePerms): RuntimePerms {
  const out = { ...p };
  if (out.user === '') delete out.user;
  if (out.group === '') delete out.group;
  return out;
}

function lineAction(
  line: TmpfilesLine,
  origin: RuntimeOrigin,
  users: NamedId[],
  groups: NamedId[],
  skip: (reason: string, warn: boolean) => void,
): RuntimeAction | undefined {
  const known = NOT_APPLIED[line.type];
  if (known) {
    skip(`type ${line.type}: ${known[0]}`, known[1]);
    return undefined;
  }
  if (!'dDvqQefFLzZ'.includes(line.type)) {
    skip(`unknown type ${line.type}${line.modifiers}: not applied`, true);
    return undefined;
  }
  if (line.modifiers.includes('^')) {
    skip('reads a system credential: not applied', true);
    return undefined;
  }
  let path: string;
  let argument: string | undefined;
  try {
    path = expandSpecifiers(line.path);
    // L's target and f's content take specifiers too; base64 (~) content is taken as it is.
    argument = line.argument === undefined ? undefined : line.modifiers.includes('~') ? line.argument : expandSpecifiers(line.argument);
  } catch (e) {
    skip((e as Error).message, true);
    return undefined;
  }
  const perms: RuntimePerms = {};
  if (line.mode) {
    perms.mode = line.mode.value;
    if (line.mode.createOnly || line.mode.masked) perms.createOnly = true;
  }
  if (line.user !== undefined) {
    const u = resolveId(users, line.user);
    if (!u) {
      skip(`user ${line.user} is not in the image's /etc/passwd`, true);
      return undefined;
    }
    perms.uid = u.id;
    if (u.name !== '') perms.user = u.name;
  }
  if (line.group !== undefined) {
    const g = resolveId(groups, line.group);
    if (!g) {
      skip(`group ${line.group} is not in the image's /etc/group`, true);
      return undefined;
    }
    perms.gid = g.id;
    if (g.name !== '') perms.group = g.name;
  }
  // A new path gets root's ownership where the line leaves it out.
  switch (line.type) {
    case 'd':
    case 'D':
    case 'v':
    case 'q':
    case 'Q':
      return { kind: 'dir', path, ...perms, origin };
    case 'e':
      return { kind: 'adjust', path, recursive: false, ...perms, origin };
    case 'z':
    case 'Z':
      return { kind: 'adjust', path, recursive: line.type === 'Z', ...perms, origin };
    case 'f':
    case 'F': {
      const content = argument === undefined ? undefined : line.modifiers.includes('~') ? Buffer.from(argument, 'base64').toString('base64') : Buffer.from(argument).toString('base64');
      const action: RuntimeAction = { kind: 'file', path, truncate: line.type === 'F' || line.modifiers.includes('+'), ...perms, origin };
      if (content !== undefined && content !== '') action.content = content;
      return action;
    }
    case 'L':
      return { kind: 'symlink', path, target: argument ?? `/usr/share/factory${path}`, replace: line.modifiers.includes('+'), origin };
    default:
      return undefined;
  }
}

/** "tmpfiles.d line 3 of /usr/lib/tmpfiles.d/x.conf", "RuntimeDirectory= of redis-server.service". */
export function describeOrigin(origin: RuntimeOrigin): string {
  return origin.kind === 'tmpfiles' ? `tmpfiles.d line ${origin.line} of ${origin.file}` : `${origin.setting}= of ${origin.unit}`;
}

const octal = (m: number) => m.toString(8).padStart(4, '0');

/** "directory /run/redis (mode 2755, owner redis:redis)". */
export function describeAction(a: RuntimeAction): string {
  if (a.kind === 'symlink') return `symlink ${a.path} → ${a.target}`;
  const what = a.kind === 'dir' ? 'directory' : a.kind === 'file' ? 'file' : a.recursive ? 'mode and owner of the tree' : 'mode and owner of';
  const bits: string[] = [];
  if (a.mode !== undefined) bits.push(`mode ${octal(a.mode)}`);
  if (a.uid !== undefined || a.gid !== undefined) bits.push(`owner ${a.user ?? a.uid ?? '-'}:${a.group ?? a.gid ?? '-'}`);
  return `${what} ${a.path}${bits.length ? ` (${bits.join(', ')})` : ''}`;
}

/** Users and groups the plan makes owners, by id, with the action that does. */
export function planOwners(actions: readonly RuntimeAction[]): { uids: Map<number, RuntimeAction>; gids: Map<number, RuntimeAction> } {
  const uids = new Map<number, RuntimeAction>();
  const gids = new Map<number, RuntimeAction>();
  for (const a of actions) {
    if (a.kind === 'symlink') continue;
    if (a.uid !== undefined && a.uid !== 0 && !uids.has(a.uid)) uids.set(a.uid, a);
    if (a.gid !== undefined && a.gid !== 0 && !gids.has(a.gid)) gids.set(a.gid, a);
  }
  return { uids, gids };
}
