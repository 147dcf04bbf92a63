/** Minimal /etc/passwd and /etc/group reading: the closure only needs names and ids. */

export interface PasswdUser {
  name: string;
  uid: number;
  gid: number;
}

export function parsePasswd(text: string): PasswdUser[] {
  const out: PasswdUser[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length < 4 || f[0] === '' || line.startsWith('#')) continue;
    const uid = Number(f[2]);
    const gid = Number(f[3]);
    if (!Number.isInteger(uid) || !Number.isInteger(gid)) continue;
    out.push({ name: f[0]!, uid, gid });
  }
  return out;
}

/** The passwd entry of a user given by name or numeric uid. */
export function findUser(users: PasswdUser[], who: string): PasswdUser | undefined {
  if (/^\d+$/.test(who)) return users.find((u) => u.uid === Number(who));
  return users.find((u) => u.name === who);
}

export interface GroupEntry {
  name: string;
  gid: number;
}

/** /etc/group: names and gids. */
export function parseGroup(text: string): GroupEntry[] {
  const out: GroupEntry[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length < 3 || f[0] === '' || line.startsWith('#')) continue;
    const gid = Number(f[2]);
    if (f[2] === '' || !Number.isInteger(gid)) continue;
    out.push({ name: f[0]!, gid });
  }
  return out;
}
