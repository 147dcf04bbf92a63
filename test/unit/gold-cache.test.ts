import { execa } from 'execa';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cachedFile } from '../../src/core/import/gold-cache.js';
import { resolveCopyIns } from '../../src/core/import/gold-debian.js';
import { layerOnto } from '../helpers/gold.js';
import { tempDir } from '../helpers/tmp.js';

describe('gold cache: one build per file, however many callers', () => {
  it('parallel callers share one build; a failed build leaves nothing', async () => {
    const t = await tempDir();
    try {
      const out = join(t.dir, 'tree.tar');
      let builds = 0;
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      const build = async (tmp: string) => {
        builds++;
        await gate;
        await writeFile(tmp, 'built');
      };
      const callers = [cachedFile(out, build), cachedFile(out, build), cachedFile(out, build)];
      // the first caller holds the lock (its pid inside) while the others wait
      for (let i = 0; i < 100 && !existsSync(`${out}.lock`); i++) await new Promise((r) => setTimeout(r, 20));
      expect(JSON.parse(await readFile(`${out}.lock`, 'utf8'))).toMatchObject({ pid: process.pid });
      release();
      expect(await Promise.all(callers)).toEqual([out, out, out]);
      expect(builds).toBe(1);
      expect(await readFile(out, 'utf8')).toBe('built');

      const other = join(t.dir, 'other.tar');
      await expect(cachedFile(other, async (tmp) => {
        await writeFile(tmp, 'half');
        throw new Error('mmdebstrap failed');
      })).rejects.toThrow('mmdebstrap failed');
      expect(existsSync(other) || existsSync(`${other}.lock`)).toBe(false);
    } finally {
      await t.cleanup();
    }
  });

  it('breaks the lock of a builder that died, not of one that lives', async () => {
    const t = await tempDir();
    try {
      const out = join(t.dir, 'tree.tar');
      // a lock left by a process that has exited
      const dead = spawn(process.execPath, ['-e', '']);
      await new Promise((r) => dead.on('exit', r));
      await writeFile(`${out}.lock`, JSON.stringify({ pid: dead.pid }));
      expect(await cachedFile(out, (tmp) => writeFile(tmp, 'rebuilt'))).toBe(out);
      expect(await readFile(out, 'utf8')).toBe('rebuilt');

      // a lock held by a live process (this one) is waited for
      const held = join(t.dir, 'held.tar');
      await writeFile(`${held}.lock`, JSON.stringify({ pid: process.pid }));
      let done = false;
      const waiting = cachedFile(held, (tmp) => writeFile(tmp, 'never')).then(() => (done = true));
      await new Promise((r) => setTimeout(r, 1500));
      expect(done).toBe(false);
      // the holder finishes: its file in place, then its lock removed
      await writeFile(held, 'from the holder');
      await rm(`${held}.lock`);
      await waiting;
      expect(await readFile(held, 'utf8')).toBe('from the holder');
    } finally {
      await t.cleanup();
    }
  });
});

describe('layered gold tar (tests share one package tree, copy-ins laid over it)', () => {
  it('replaces files, adds new ones and their directories, and lists every path once', async () => {
    const t = await tempDir();
    try {
      const root = join(t.dir, 'root');
      await mkdir(join(root, 'etc', 'app'), { recursive: true });
      await writeFile(join(root, 'etc', 'app', 'app.conf'), 'packaged\n');
      await writeFile(join(root, 'etc', 'app', 'other.conf'), 'kept\n');
      // members after the replaced one, one with a name long enough for a pax header (as mmdebstrap writes)
      const long = join('var', 'lib', 'a-directory-whose-name-is-long-enough'.repeat(3), 'x'.repeat(60));
      await mkdir(join(root, long), { recursive: true });
      await writeFile(join(root, long, 'data'), 'deep\n');
      await mkdir(join(root, 'var', 'mail'), { recursive: true });
      const base = join(t.dir, 'base.tar');
      await execa('tar', ['-cf', base, '-C', root, '--format=pax', '--sort=name', '--owner=0', '--group=0', '--numeric-owner', '.']);
      const before = (await execa('tar', ['-tf', base])).stdout.split('\n');
      const conf = join(t.dir, 'conf');
      await mkdir(join(conf, 'sub'), { recursive: true });
      await writeFile(join(conf, 'app.conf'), 'mine\n');
      await writeFile(join(conf, 'sub', 'extra.conf'), 'extra\n', { mode: 0o600 });
      const site = join(t.dir, 'index.html');
      await writeFile(site, '<h1>hi</h1>\n');
      const out = join(t.dir, 'layered.tar');
      await layerOnto(base, await resolveCopyIns([`${conf}:/etc/app`, `${site}:/srv/www/site`]), out);

      const members = (await execa('tar', ['-tf', out])).stdout.split('\n');
      expect(new Set(members).size).toBe(members.length);
      expect(members).toEqual(expect.arrayContaining(before)); // nothing of the base lost
      expect(members).toContain(`./${long}/data`);
      expect(members).toEqual(expect.arrayContaining(['./etc/app/app.conf', './etc/app/other.conf', './etc/app/sub/', './etc/app/sub/extra.conf', './srv/', './srv/www/', './srv/www/site/', './srv/www/site/index.html']));
      const x = join(t.dir, 'x');
      await mkdir(x);
      await execa('tar', ['-xf', out, '-C', x]);
      expect(await readFile(join(x, 'etc', 'app', 'app.conf'), 'utf8')).toBe('mine\n');
      expect(await readFile(join(x, 'etc', 'app', 'other.conf'), 'utf8')).toBe('kept\n');
      expect(await readFile(join(x, 'srv', 'www', 'site', 'index.html'), 'utf8')).toBe('<h1>hi</h1>\n');
      const verbose = (await execa('tar', ['-tvf', out, './etc/app/sub/extra.conf'])).stdout;
      expect(verbose).toMatch(/^-rw------- 0\/0 /);
    } finally {
      await t.cleanup();
    }
  });
});
