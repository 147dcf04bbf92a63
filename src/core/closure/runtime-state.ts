import { canonicalImagePath } from '../runtime/image-source.js';
import { describeOrigin, planOwners, type RuntimeAction } from '../runtime/plan.js';
import type { RecordedRuntime } from '../runtime/for-image.js';
import { keepPath } from './context.js';
import type { ClosureContext } from './context.js';
import { mountPointAbove } from './keep-set.js';
import { parseGroup, parsePasswd } from './passwd.js';
import type { Reason } from './types.js';

/**
 * Runtime state the workload needs, and who it runs as:
 * - a tmpfiles.d file is kept (and all its lines go into the slim image's plan) when one of its
 *   lines creates a path the workload used, or one below it;
 * - the directories of the workload's units always go into the plan;
 * - planned paths the gold image has (outside the run-time mount points) are kept as entries;
 * - the passwd/group/shadow/gshadow files, for the users and groups the workload switched to or
 *   gave files to, and for the owners of the planned paths.
 * Returns the plan the slim image records, for its init and the sandbox.
 */
export async function keepRuntimeState(ctx: ClosureContext): Promise<RecordedRuntime | undefined> {
  const rt = ctx.input.runtime;
  if (!rt) return undefined;
  const entries = ctx.image.entries;
  const used = [...new Set(rt.used.map((p) => canonicalImagePath(entries, p)))].sort();
  const usesAtOrBelow = (path: string): string | undefined => {
    // `used` is sorted: the first path >= `path` is the only candidate that can be it or below it.
    let lo = 0;
    let hi = used.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (used[mid]! < path) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < used.length && used[i]!.startsWith(path); i++) {
      if (used[i] === path || used[i]!.startsWith(`${path}/`)) return used[i];
    }
    return undefined;
  };

  const files = new Map<string, { line: number; creates: string }>();
  for (const a of rt.actions) {
    if (a.origin.kind !== 'tmpfiles' || a.kind === 'adjust' || files.has(a.origin.file)) continue;
    if (usesAtOrBelow(a.path) !== undefined) files.set(a.origin.file, { line: a.origin.line, creates: a.path });
  }
  const actions = rt.actions.filter((a) => a.origin.kind === 'unit' || files.has(a.origin.file));
  for (const [file, why] of files) keepPath(ctx, file, { kind: 'tmpfiles', line: why.line, creates: why.creates });

  for (const a of actions) {
    if (a.kind === 'adjust' || mountPointAbove(a.path) !== undefined || ctx.image.resolveNoFollow(a.path) === undefined) continue;
    keepPath(ctx, a.path, { kind: 'runtime', by: describeOrigin(a.origin) });
  }
  await keepAccounts(ctx, actions, rt.uids ?? [], rt.gids ?? []);
  const units = [...new Set(actions.flatMap((a) => (a.origin.kind === 'unit' ? [a.origin.unit] : [])))];
  return { actions, units, tmpfiles: [...files.keys()] };
}

const USER_FILES = ['/etc/passwd', '/etc/shadow', '/etc/group'];
const GROUP_FILES = ['/etc/group', '/etc/gshadow'];

async function keepAccounts(ctx: ClosureContext, actions: RuntimeAction[], uids: number[], gids: number[]): Promise<void> {
  const owners = planOwners(actions);
  const wantUsers = new Map<number, string>(uids.filter((u) => u !== 0).map((u) => [u, 'whom the workload switched to']));
  const wantGroups = new Map<number, string>(gids.filter((g) => g !== 0).map((g) => [g, 'which the workload switched to']));
  for (const [uid, a] of owners.uids) if (!wantUsers.has(uid)) wantUsers.set(uid, `owner of ${a.path} (${describeOrigin(a.origin)})`);
  for (const [gid, a] of owners.gids) if (!wantGroups.has(gid)) wantGroups.set(gid, `group of ${a.path} (${describeOrigin(a.origin)})`);
  if (wantUsers.size === 0 && wantGroups.size === 0) return;
  const users = parsePasswd((await ctx.image.readText('/etc/passwd')) ?? '');
  const groups = parseGroup((await ctx.image.readText('/etc/group')) ?? '');
  const keepFiles = (list: string[], reason: Reason) => {
    for (const f of list) if (ctx.image.resolveNoFollow(f) !== undefined) keepPath(ctx, f, reason);
  };
  for (const [uid, why] of wantUsers) {
    const user = users.find((u) => u.uid === uid);
    // A bare number works without an entry; nothing to keep.
    if (user) keepFiles(USER_FILES, { kind: 'user', name: user.name, why });
  }
  for (const [gid, why] of wantGroups) {
    const group = groups.find((g) => g.gid === gid);
    if (group) keepFiles(GROUP_FILES, { kind: 'group', name: group.name, why });
  }
}
