import { existsSync } from 'node:fs';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUILTIN_PROVIDERS } from '../../providers/index.js';
import { importImage } from '../../src/core/import/import-image.js';
import { initRepository, openRepository, type Repository } from '../../src/core/repository/repository.js';
import type { Provider, ShipContext } from '../../src/core/ship/provider.js';
import { asProvider, findProvider, providerEntries } from '../../src/core/ship/registry.js';
import { givenOptions, resolveProviderOptions, shipImage } from '../../src/core/ship/ship-image.js';
import type { AimError} from '../../src/lib/errors.js';
import { ConfigError } from '../../src/lib/errors.js';
import { RecordingReporter, silentReporter } from '../../src/lib/reporter.js';
import { tempDir } from '../helpers/tmp.js';

/** A provider that records calls and can be told to fail at a step. */
function fakeProvider(name: string, failAt?: 'check' | 'ship'): Provider & { calls: string[] } {
  const calls: string[] = [];
  return {
    name,
    summary: 'test provider',
    calls,
    options: [
      { name: 'target', type: 'string', required: true, env: 'FAKE_TARGET', description: 'where' },
      { name: 'force', type: 'boolean', description: 'force' },
    ],
    plan: (request) => {
      calls.push('plan');
      return { builds: [{ format: 'tar', dir: 'tar' }], uploads: [{ file: 'rootfs.tar', destination: String(request.options.target) }], notes: [] };
    },
    check: async () => {
      calls.push('check');
      if (failAt === 'check') throw new Error('credentials rejected');
    },
    ship: async (request, context) => {
      calls.push('ship');
      const built = await context.build('tar', 'tar');
      await writeFile(join(request.outDir, 'upload.log'), 'half');
      if (failAt === 'ship') throw new Error('upload failed');
      return { artifacts: built.artifacts, published: [{ kind: 'test', location: String(request.options.target) }] };
    },
  };
}

describe('provider registry', () => {
  it('lists the built-in providers, then valid plugin ones; malformed and clashing ones are warned about and skipped', async () => {
    const reporter = new RecordingReporter();
    const entries = providerEntries(
      [
        { plugin: 'plugin-a', result: [fakeProvider('alpha'), { name: 'Bad Name', summary: 1 }] },
        { plugin: 'plugin-b', result: fakeProvider('vmware') },
        { plugin: 'plugin-c', result: fakeProvider('alpha') },
        { plugin: 'plugin-d', result: undefined },
      ],
      reporter,
    );
    expect(entries.map((e) => [e.name, e.source])).toEqual([
      ...Object.keys(BUILTIN_PROVIDERS).map((n) => [n, 'built-in']),
      ['alpha', 'plugin-a'],
    ]);
    const warnings = reporter.warnings().map((w) => `${w.code}: ${w.message}`);
    expect(warnings).toHaveLength(3);
    expect(warnings[0]).toMatch(/W_BAD_PROVIDER: provider "Bad Name" from plugin-a is malformed: name must be .*summary must be a string.*plan must be a function/);
    expect(warnings[1]).toMatch(/W_PROVIDER_CLASH: provider vmware from plugin-b ignored: a built-in provider has that name/);
    expect(warnings[2]).toMatch(/W_PROVIDER_CLASH: provider alpha from plugin-c ignored: plugin plugin-a has that name/);
  });

  it('loads built-in providers lazily, each satisfying the interface, and names the known ones for an unknown name', async () => {
    const entries = providerEntries([], silentReporter);
    const { provider, source } = await findProvider('vmware', entries);
    expect(source).toBe('built-in');
    expect(provider.options.map((o) => o.name)).toContain('datastore-url');
    await expect(findProvider('aws2', entries)).rejects.toThrow(ConfigError);
    await expect(findProvider('aws2', entries)).rejects.toMatchObject({ hint: expect.stringMatching(/known providers: vmware/) });
    expect(() => asProvider(42, 'p')).toThrow(/from p is malformed: not an object/);
  });
});

describe('provider options', () => {
  const p = fakeProvider('fake');
  it('takes flags, then the environment, and reports every problem at once', () => {
    expect(resolveProviderOptions(p, { target: 'x', force: 'yes' }, {})).toEqual({ target: 'x', force: true });
    expect(resolveProviderOptions(p, {}, { FAKE_TARGET: 'from-env' })).toEqual({ target: 'from-env', force: undefined });
    expect(resolveProviderOptions(p, { target: 'flag' }, { FAKE_TARGET: 'env' }).target).toBe('flag');
    let e: unknown;
    try {
      resolveProviderOptions(p, { force: 'maybe', colour: 'red' }, {});
    } catch (x) {
      e = x;
    }
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as AimError).message).toBe('provider fake: unknown option "colour"; target is required (or FAKE_TARGET); force: "maybe" is not true or false');
    expect((e as AimError).hint).toBe('options of fake: --target VALUE, --force');
  });

  it('merges --opt pairs with the provider flags, refusing the same option given both ways', () => {
    expect(givenOptions(['target=a=b', 'force=true'], { 'datastore-url': 'https://h/folder', insecure: true, name: undefined })).toEqual({
      target: 'a=b',
      force: 'true',
      'datastore-url': 'https://h/folder',
      insecure: true,
    });
    expect(() => givenOptions(['=x'], {})).toThrow('--opt "=x" is not name=value');
    expect(() => givenOptions(['noequals'], {})).toThrow(ConfigError);
    expect(() => givenOptions(['target=a'], { target: 'b' })).toThrow('option target given twice (--target and --opt target=…)');
    // names that are also Object.prototype's are ordinary option names
    expect({ ...givenOptions(['__proto__=x'], { constructor: 'y' }) }).toEqual({ ['__proto__']: 'x', constructor: 'y' });
    expect(Object.keys(givenOptions(['__proto__=x', 'toString=z'], {}))).toEqual(['__proto__', 'toString']);
  });
});

describe('shipImage', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  let repo: Repository;
  let imageId: string;
  beforeAll(async () => {
    tmp = await tempDir('aim-ship-');
    await initRepository(join(tmp.dir, 'repo'));
    repo = await openRepository(join(tmp.dir, 'repo'));
    await mkdir(join(tmp.dir, 'tree', 'etc'), { recursive: true });
    await writeFile(join(tmp.dir, 'tree', 'etc', 'hostname'), 'ship\n');
    imageId = (await importImage(repo, { source: join(tmp.dir, 'tree') }, silentReporter)).id;
  });
  afterAll(async () => {
    await repo.close();
    await tmp.cleanup();
  });
  const request = (out: string, extra: object = {}) => ({ imageId, imageRef: 'test/img:1', outDir: join(tmp.dir, out), options: { target: 'somewhere' }, ...extra });

  it('plans without doing anything on --dry-run', async () => {
    const p = fakeProvider('fake');
    const r = await shipImage(repo, p, 'built-in', request('dry', { dryRun: true }), silentReporter);
    expect(r.dryRun).toBe(true);
    expect(r.plan.uploads).toEqual([{ file: 'rootfs.tar', destination: 'somewhere' }]);
    expect(p.calls).toEqual(['plan']);
    expect(existsSync(join(tmp.dir, 'dry'))).toBe(false);
  });

  it('plans, checks, then ships, building into the output directory', async () => {
    const p = fakeProvider('fake');
    const r = await shipImage(repo, p, 'plugin-x', request('ok'), silentReporter);
    expect(p.calls).toEqual(['plan', 'check', 'ship']);
    expect(r.artifacts.map((a) => a.path)).toEqual([join(tmp.dir, 'ok', 'tar', 'rootfs.tar')]);
    expect(r.published).toEqual([{ kind: 'test', location: 'somewhere' }]);
  });

  it('stops at a failed check before any work, and removes what a failed ship built (exit 10 for plugin errors)', async () => {
    const checking = fakeProvider('fake', 'check');
    await expect(shipImage(repo, checking, 'plugin-x', request('c'), silentReporter)).rejects.toMatchObject({ code: 'E_PROVIDER', exitCode: 10, message: 'provider fake: credentials rejected' });
    expect(checking.calls).toEqual(['plan', 'check']);
    expect(existsSync(join(tmp.dir, 'c'))).toBe(false);

    const shipping = fakeProvider('fake', 'ship');
    await expect(shipImage(repo, shipping, 'plugin-x', request('s'), silentReporter)).rejects.toMatchObject({ code: 'E_PROVIDER', message: 'provider fake failed: upload failed' });
    expect(existsSync(join(tmp.dir, 's'))).toBe(false);

    // an existing empty directory is kept, and emptied again
    await mkdir(join(tmp.dir, 'kept'));
    await expect(shipImage(repo, fakeProvider('fake', 'ship'), 'plugin-x', request('kept'), silentReporter)).rejects.toThrow(/upload failed/);
    expect(await readdir(join(tmp.dir, 'kept'))).toEqual([]);
  });

  it('refuses a non-empty output directory and builds outside it', async () => {
    await mkdir(join(tmp.dir, 'full'));
    await writeFile(join(tmp.dir, 'full', 'x'), '');
    await expect(shipImage(repo, fakeProvider('fake'), 'built-in', request('full'), silentReporter)).rejects.toThrow(/is not empty/);
    const escaping = { ...fakeProvider('fake'), ship: async (_r: unknown, c: Parameters<Provider['ship']>[1]) => ({ artifacts: (await c.build('tar', '../elsewhere')).artifacts, published: [] }) };
    await expect(shipImage(repo, escaping, 'plugin-x', request('esc'), silentReporter)).rejects.toThrow(/must be a subdirectory/);
    expect(existsSync(join(tmp.dir, 'elsewhere'))).toBe(false);
    expect(existsSync(join(tmp.dir, 'esc'))).toBe(false);
  });
});

describe('vmware provider', () => {
  it('builds the VMDK once and packs that VMDK into the OVA; --memory is checked before any work', async () => {
    const { provider } = await findProvider('vmware', providerEntries([], silentReporter));
    const builds: { format: string; subdir: string; options: Record<string, unknown> }[] = [];
    const context: ShipContext = {
      reporter: silentReporter,
      signal: new AbortController().signal,
      env: {},
      requireFormat: () => undefined,
      build: async (format, subdir, options = {}) => {
        builds.push({ format, subdir, options });
        const path = `/out/${subdir}/${format === 'vmdk' ? 'disk.vmdk' : 'web.ova'}`;
        return { imageId: 'id', format, outDir: `/out/${subdir}`, artifacts: [{ path, kind: format, bytes: 1, sha256: 'x' }], seconds: 0 };
      },
    };
    const request = { imageId: 'a'.repeat(64), imageRef: 'slim/web:1', outDir: '/out', options: { kernel: 'core/kernel:bookworm', memory: '1024' } };
    const outcome = await provider.ship(request, context);
    expect(builds).toEqual([
      { format: 'vmdk', subdir: 'vmdk', options: { platform: 'vmware', kernelImage: 'core/kernel:bookworm' } },
      { format: 'ova', subdir: 'ova', options: { platform: 'vmware', kernelImage: 'core/kernel:bookworm', vmdk: '/out/vmdk/disk.vmdk', vmName: 'slim-web-1', memoryMiB: 1024 } },
    ]);
    expect(outcome.published.map((p) => p.location)).toEqual(['/out/vmdk/disk.vmdk', '/out/ova/web.ova']);
    await expect(provider.check({ ...request, options: { memory: 'lots' } }, context)).rejects.toThrow(/--memory lots: expected the VM's memory in MiB/);
  });
});
