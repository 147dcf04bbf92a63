import { execa } from 'execa';
import { appendFile, copyFile, chmod, lstat, mkdir, readFile, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fieldValue, getField, parseDeb822 } from '../../src/core/analyze/deb822.js';

/**
 * Debian packages rebuilt from what a gold tree has installed, offline: the files the package's
 * dpkg list names (read through the tree's own symlinked directories, /lib → usr/lib), the control
 * fields of its dpkg status paragraph, and dpkg-deb --build. Changing some files on the way gives
 * a "patched" package with a higher version: a real .deb whose only difference is known.
 */

export interface PatchedDeb {
  path: string;
  package: string;
  /** The version installed in the tree. */
  installed: string;
  version: string;
  source: string;
  /** The files changed, as the package lists them. */
  changed: string[];
}

/** The status paragraph of a package in the tree, as text, and its parsed fields. */
async function statusOf(root: string, pkg: string): Promise<{ text: string; version: string; arch: string; source: string; multiArch?: string }> {
  const status = await readFile(join(root, 'var/lib/dpkg/status'), 'utf8');
  const text = status.split(/\n\n+/).find((p) => new RegExp(`^Package: ${pkg.replace(/[+.]/g, '\\$&')}$`, 'm').test(p));
  if (!text) throw new Error(`${pkg} is not installed in ${root}`);
  const [p] = parseDeb822(text);
  return {
    text,
    version: fieldValue(p!, 'Version')!,
    arch: fieldValue(p!, 'Architecture')!,
    source: (fieldValue(p!, 'Source') ?? pkg).split(' ')[0]!,
    ...(fieldValue(p!, 'Multi-Arch') ? { multiArch: fieldValue(p!, 'Multi-Arch') } : {}),
  };
}

/** The control file: the status paragraph without the fields only an installed package has, at a new version. */
function controlFrom(statusText: string, version: string): string {
  const out: string[] = [];
  let skipping = false;
  for (const line of statusText.split('\n')) {
    if (/^[ \t]/.test(line)) {
      if (!skipping) out.push(line);
      continue;
    }
    const name = line.slice(0, line.indexOf(':'));
    skipping = ['Status', 'Conffiles', 'Config-Version'].includes(name);
    if (skipping) continue;
    out.push(name === 'Version' ? `Version: ${version}` : line);
  }
  return out.join('\n') + '\n';
}

/**
 * Builds `<out>/<package>_<version>_<arch>.deb` from the installed package, with `change` (paths
 * as the package lists them) altered: a few bytes appended, so their content differs and nothing
 * else does; `replace` (path → new content, mode kept): a file written anew, e.g. a program
 * broken on purpose; `scripts` adds maintainer scripts (name → text) to the package.
 */
export async function patchedDeb(root: string, pkg: string, options: { change: string[]; replace?: Record<string, string>; suffix: string; out: string; scripts?: Record<string, string> }): Promise<PatchedDeb> {
  const st = await statusOf(root, pkg);
  const version = `${st.version}${options.suffix}`;
  const info = join(root, 'var/lib/dpkg/info');
  const list = await readFile(join(info, `${pkg}:${st.arch}.list`), 'utf8').catch(() => readFile(join(info, `${pkg}.list`), 'utf8'));
  const stage = join(options.out, `${pkg}-${version}`);
  await rm(stage, { recursive: true, force: true });
  await mkdir(join(stage, 'DEBIAN'), { recursive: true });
  const paths = list.split('\n').filter((l) => l.startsWith('/') && l !== '/.');
  // a directory the package ships that merged /usr turned into a symlink (/lib → usr/lib) is a directory in the package
  const parents = new Set(paths.map((p) => p.slice(0, p.lastIndexOf('/'))));
  for (const path of paths) {
    const from = join(root, path);
    const to = join(stage, path);
    const s = await lstat(from);
    if (s.isDirectory() || parents.has(path)) await mkdir(to, { recursive: true, mode: s.isDirectory() ? s.mode & 0o7777 : 0o755 });
    else if (s.isSymbolicLink()) await symlink(await readlink(from), to);
    else if (s.isFile()) {
      await copyFile(from, to);
      await chmod(to, s.mode & 0o7777);
    }
  }
  for (const path of options.change) {
    if (!list.split('\n').includes(path)) throw new Error(`${pkg} does not list ${path}`);
    await appendFile(join(stage, path), '\n# changed by aim tests\n');
  }
  for (const [path, content] of Object.entries(options.replace ?? {})) {
    if (!list.split('\n').includes(path)) throw new Error(`${pkg} does not list ${path}`);
    const mode = (await lstat(join(stage, path))).mode & 0o7777;
    await rm(join(stage, path));
    await writeFile(join(stage, path), content, { mode });
  }
  await writeFile(join(stage, 'DEBIAN', 'control'), controlFrom(st.text, version));
  for (const [name, text] of Object.entries(options.scripts ?? {})) await writeFile(join(stage, 'DEBIAN', name), text, { mode: 0o755 });
  const [p] = parseDeb822(st.text);
  const conffiles = getField(p!, 'Conffiles');
  if (conffiles) {
    const paths = [conffiles.first, ...conffiles.rest].map((l) => l.trim().split(/\s+/)).filter((t) => t[0]?.startsWith('/') && !t.includes('obsolete')).map((t) => t[0]!);
    if (paths.length > 0) await writeFile(join(stage, 'DEBIAN', 'conffiles'), paths.join('\n') + '\n');
  }
  const path = join(options.out, `${pkg}_${version.replace(/^\d+:/, '')}_${st.arch}.deb`);
  await execa('dpkg-deb', ['--root-owner-group', '-Zxz', '--build', stage, path]);
  await rm(stage, { recursive: true, force: true });
  return { path, package: pkg, installed: st.version, version, source: st.source, changed: [...options.change, ...Object.keys(options.replace ?? {})] };
}
