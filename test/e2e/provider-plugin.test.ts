import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cp, mkdir, readFile, readdir, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { aim, projectRoot, runJs } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

interface ListResult {
  providers: { name: string; source: string; options: { name: string }[] }[];
}
interface ShipJson {
  provider: string;
  source: string;
  alreadyPublished: boolean;
  publication: { id: string; state: string; resources: { kind: string; id: string; state: string }[] };
  artifacts: { path: string; sha256: string }[];
  published: { kind: string; location: string; sha256: string }[];
}

let tmp: Awaited<ReturnType<typeof tempDir>>;
let repo: string;
let env: Record<string, string>;
let plugin: string;
const run = <T = Record<string, unknown>>(...args: string[]) => aim<T>([...args, '--repo', repo], { env });
const plain = (...args: string[]) => execa(process.execPath, [runJs, ...args], { env, reject: false, timeout: 120_000 });

beforeAll(async () => {
  tmp = await tempDir('aim-plugin-');
  repo = join(tmp.dir, 'repo');
  // plugins are recorded under $XDG_DATA_HOME/aim: a temporary one, never the user's
  env = { XDG_DATA_HOME: join(tmp.dir, 'data'), XDG_CACHE_HOME: join(tmp.dir, 'cache'), XDG_CONFIG_HOME: join(tmp.dir, 'config') };
  const tree = join(tmp.dir, 'tree');
  await mkdir(join(tree, 'etc'), { recursive: true });
  await writeFile(join(tree, 'etc', 'motd'), 'shipped by a plugin\n');
  expect((await run('repo', 'init')).exitCode).toBe(0);
  expect((await run('image', 'import', tree, '--tag', 'fixture/small:1')).exitCode).toBe(0);
  // The plugin as its author develops it: aim is its peer dependency, linked into its node_modules
  // (what `npm link aim` does), so `import … from 'aim/provider'` finds this very aim.
  plugin = join(tmp.dir, 'provider-plugin');
  await cp(join(projectRoot, 'examples', 'provider-plugin'), plugin, { recursive: true });
  await mkdir(join(plugin, 'node_modules'));
  await symlink(projectRoot, join(plugin, 'node_modules', 'aim'));
});
afterAll(async () => tmp.cleanup());

describe('a third-party provider as an oclif plugin', () => {
  it('is unknown before the plugin is linked', async () => {
    const list = await run<ListResult>('provider', 'list');
    expect(list.exitCode, list.stderr).toBe(0);
    expect(list.json.providers.map((p) => p.name)).toEqual(['aws', 'vmware']);
    const res = await run<{ error: { code: string; hint: string } }>('ship', 'localdir', 'fixture/small:1', '--out', join(tmp.dir, 'never'));
    expect(res.exitCode).toBe(2);
    expect(res.json.error.hint).toMatch(/known providers: aws, vmware/);
  });

  it('is linked with `aim plugins link`, listed, and ships through aim without changing aim', async () => {
    const linked = await plain('plugins', 'link', plugin, '--no-install');
    expect(linked.exitCode, linked.stderr).toBe(0);
    expect(JSON.parse(await readFile(join(tmp.dir, 'data', 'aim', 'package.json'), 'utf8'))).toMatchObject({ oclif: { plugins: [{ name: 'aim-provider-localdir', type: 'link' }] } });
    expect(linked.stderr).not.toMatch(/ts-node|tsx|transpile/i);

    const list = await run<ListResult>('provider', 'list');
    expect(list.json.providers.map((p) => [p.name, p.source])).toEqual([
      ['aws', 'built-in'],
      ['vmware', 'built-in'],
      ['localdir', 'aim-provider-localdir'],
    ]);
    expect(list.json.providers[2]!.options.map((o) => o.name)).toEqual(['dir']);
    // `aim ship --help` lists the plugin's provider and options with the built-in ones
    const help = await plain('ship', '--help');
    expect(help.stdout).toMatch(/PROVIDERS AND THEIR OPTIONS[\s\S]*vmware \(built-in\)[\s\S]*localdir \(aim-provider-localdir\)\s[\s\S]*--dir VALUE/);

    const dest = join(tmp.dir, 'dest');
    await mkdir(dest);
    const out = join(tmp.dir, 'out');
    const shipped = await run<ShipJson>('ship', 'localdir', 'fixture/small:1', '--out', out, '--dir', dest);
    expect(shipped.exitCode, shipped.stderr).toBe(0);
    expect(shipped.json).toMatchObject({ provider: 'localdir', source: 'aim-provider-localdir' });
    const copy = join(dest, 'fixture-small-1.tar');
    expect(shipped.json.published).toEqual([expect.objectContaining({ kind: 'local copy', location: copy })]);
    const bytes = await readFile(copy);
    const digest = createHash('sha256').update(bytes).digest('hex');
    expect(shipped.json.artifacts[0]!.sha256).toBe(digest);
    expect(bytes.includes(Buffer.from('shipped by a plugin'))).toBe(true);
    // the tar in --out is what the built-in tar format builds from the same image
    const direct = await run<{ artifacts: { sha256: string }[] }>('build', 'fixture/small:1', '--format', 'tar', '--out', join(tmp.dir, 'direct'));
    expect(direct.json.artifacts[0]!.sha256).toBe(digest);

    // the same ship again (another --out, the option as --opt): the same publication, nothing copied again
    const before = (await stat(copy)).mtimeMs;
    const again = await run<ShipJson>('ship', 'localdir', 'fixture/small:1', '--out', join(tmp.dir, 'out2'), '--opt', `dir=${dest}`);
    expect(again.exitCode, again.stderr).toBe(0);
    expect(again.json).toMatchObject({ alreadyPublished: true, publication: { id: shipped.json.publication.id, state: 'published' } });
    expect(shipped.json.publication.resources.map((r) => `${r.kind} ${r.state}`)).toEqual(['build created', 'local copy created']);
    expect((await stat(copy)).mtimeMs).toBe(before);
    expect(existsSync(join(tmp.dir, 'out2'))).toBe(false);

    // without --out: the tar is built in aim's scratch space, copied, and removed once published
    const dest2 = join(tmp.dir, 'dest2');
    await mkdir(dest2);
    const scratchShip = await run<ShipJson & { buildsRemoved: boolean }>('ship', 'localdir', 'fixture/small:1', '--dir', dest2);
    expect(scratchShip.exitCode, scratchShip.stderr).toBe(0);
    expect(scratchShip.json).toMatchObject({ alreadyPublished: false, buildsRemoved: true, publication: { state: 'published' } });
    expect(scratchShip.json.publication.resources.map((r) => `${r.kind} ${r.state}`)).toEqual(['build removed', 'local copy created']);
    expect(createHash('sha256').update(await readFile(join(dest2, 'fixture-small-1.tar'))).digest('hex')).toBe(digest);
    expect(await readdir(join(repo, 'ship-builds'))).toEqual([]);

    // the plugin's own refusal (a file it did not write is there) is a provider error, exit 10, before any work
    const other = join(tmp.dir, 'other');
    await mkdir(other);
    await writeFile(join(other, 'fixture-small-1.tar'), 'not ours');
    const refused = await run<{ error: { code: string; message: string; hint: string } }>('ship', 'localdir', 'fixture/small:1', '--dir', other);
    expect(refused.exitCode).toBe(10);
    expect(refused.json.error).toMatchObject({ code: 'E_PROVIDER', message: expect.stringMatching(/fixture-small-1\.tar already exists/), hint: expect.stringMatching(/another --dir/) });
    expect(await readdir(join(repo, 'ship-builds'))).toEqual([]);
    expect(await readFile(join(other, 'fixture-small-1.tar'), 'utf8')).toBe('not ours');

    // a required option that is missing is reported before any work, naming its variable
    const missing = await run<{ error: { code: string; message: string } }>('ship', 'localdir', 'fixture/small:1', '--out', join(tmp.dir, 'out4'));
    expect(missing.exitCode).toBe(2);
    expect(missing.json.error.message).toMatch(/dir is required \(or AIM_LOCALDIR\)/);
    expect(existsSync(join(tmp.dir, 'out4'))).toBe(false);
    expect(await readdir(dest)).toEqual(['fixture-small-1.tar']);
  });

  it('is gone after `aim plugins unlink`; its publications stay listed, and rm/resume say the provider is missing', async () => {
    const un = await plain('plugins', 'unlink', 'aim-provider-localdir');
    expect(un.exitCode, un.stderr).toBe(0);
    const list = await run<ListResult>('provider', 'list');
    expect(list.json.providers.map((p) => p.name)).toEqual(['aws', 'vmware']);
    const pubs = await run<{ publications: { id: string; provider: string; state: string }[] }>('ship', 'list', '--provider', 'localdir');
    // the ship with --out and the one without
    expect(pubs.json.publications.map((p) => p.state)).toEqual(['published', 'published']);
    const id = pubs.json.publications[0]!.id;
    for (const verb of ['rm', 'resume']) {
      const r = await run<{ error: { code: string; message: string; hint: string } }>('ship', verb, id);
      expect(r.exitCode).toBe(2);
      expect(r.json.error).toMatchObject({
        code: 'E_PROVIDER_NOT_INSTALLED',
        message: `publication ${id} was made by provider "localdir" (plugin aim-provider-localdir), which is not installed`,
        hint: 'install the plugin again (aim plugins install aim-provider-localdir), then run this again',
      });
    }
    expect(existsSync(join(tmp.dir, 'dest', 'fixture-small-1.tar'))).toBe(true);
  });
});
