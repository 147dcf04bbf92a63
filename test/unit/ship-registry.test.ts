import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { BUILTIN_PROVIDERS } from '../../providers/index.js';
import { defineProvider } from '../../src/api/provider.js';
import { importImage } from '../../src/core/import/import-image.js';
import { newLeaseOwner } from '../../src/core/repository/catalog-publications.js';
import { fsckRepository, gcRepository } from '../../src/core/repository/maintenance.js';
import { initRepository, openRepository, type Repository } from '../../src/core/repository/repository.js';
import { findPublication, listPublications, removePublication, resumePublication } from '../../src/core/ship/publications.js';
import type { JournalResource } from '../../src/core/ship/provider.js';
import { asProvider, findProvider, providerEntries } from '../../src/core/ship/registry.js';
import { shipImage } from '../../src/core/ship/ship-image.js';
import { ConfigError, InterruptedError } from '../../src/lib/errors.js';
import { RecordingReporter, silentReporter } from '../../src/lib/reporter.js';
import { tempDir } from '../helpers/tmp.js';

/** A stand-in cloud: objects by name, and a hook a test can hold an upload at. */
interface FakeCloud {
  objects: Map<string, string>;
  calls: string[];
  gate?: (name: string, signal: AbortSignal) => Promise<void>;
  failAt?: string;
}

/** A provider over the stand-in cloud, on the v2 contract: it journals each object before creating it. */
function cloudProvider(name: string, cloud: FakeCloud) {
  return defineProvider({
    name,
    summary: 'test provider',
    options: z.object({
      bucket: z.string().min(1).meta({ description: 'where', env: 'FAKE_BUCKET' }),
      objects: z.array(z.string()).default(['a', 'b']).describe('objects to put'),
      token: z.string().optional().meta({ description: 'API token', env: 'FAKE_TOKEN', secret: true }),
    }),
    target: (o) => `bucket ${o.bucket}`,
    async observe(target) {
      cloud.calls.push('observe');
      // remote state by the idempotency key, as a cloud's tags would give it
      return { present: [...cloud.objects.entries()].filter(([, key]) => key === target.key).map(([n]) => n), key: target.key };
    },
    plan(_image, observed, options) {
      cloud.calls.push('plan');
      const missing = options.objects.filter((o) => !observed.present.includes(o));
      return { key: observed.key, missing, steps: missing.map((o) => ({ action: 'put', subject: o, detail: options.bucket })), ...(missing.length === 0 ? { upToDate: true } : {}) };
    },
    async apply(plan, ctx) {
      cloud.calls.push(`${ctx.resuming ? 'apply (resuming)' : 'apply'}${ctx.options.token ? ` with token ${ctx.options.token}` : ''}`);
      const built = await ctx.build('tar', 'tar');
      for (const o of plan.missing) {
        const r = await ctx.journal.begin({ kind: 'object', id: o, location: ctx.options.bucket });
        await cloud.gate?.(o, ctx.signal);
        if (cloud.failAt === o) throw new Error(`upload of ${o} failed`);
        cloud.objects.set(o, plan.key);
        await ctx.journal.created(r, { data: { bytes: built.artifacts[0]!.bytes } });
      }
      return { published: plan.missing.map((o) => ({ kind: 'object', location: `${ctx.options.bucket}/${o}` })) };
    },
    async remove(resource: JournalResource) {
      cloud.calls.push(`remove ${resource.id}`);
      cloud.objects.delete(resource.id);
    },
  });
}

describe('provider registry', () => {
  const legacy = { name: 'old', summary: 's', options: [{ name: 'x', type: 'string', description: 'd' }], plan() {}, check() {}, ship() {} };

  it('lists the built-in providers the CLI passes in, then valid plugin ones; malformed, reserved and clashing ones are warned about and skipped', async () => {
    const reporter = new RecordingReporter();
    const cloud: FakeCloud = { objects: new Map(), calls: [] };
    const entries = providerEntries(
      { builtin: async () => cloudProvider('builtin', cloud) },
      [
        { plugin: 'plugin-a', result: [cloudProvider('alpha', cloud), { name: 'Bad Name', summary: 1 }] },
        { plugin: 'plugin-b', result: cloudProvider('builtin', cloud) },
        { plugin: 'plugin-c', result: cloudProvider('alpha', cloud) },
        { plugin: 'plugin-d', result: undefined },
        { plugin: 'plugin-e', result: [legacy, cloudProvider('resume', cloud)] },
      ],
      reporter,
    );
    expect(entries.map((e) => [e.name, e.source])).toEqual([
      ['builtin', 'built-in'],
      ['alpha', 'plugin-a'],
    ]);
    const warnings = reporter.warnings().map((w) => `${w.code}: ${w.message}`);
    expect(warnings).toHaveLength(5);
    expect(warnings[0]).toMatch(/W_BAD_PROVIDER: provider "Bad Name" from plugin-a is malformed: name must be .*summary must be a string.*options must be a zod object schema.*target must be a function/);
    expect(warnings[1]).toMatch(/W_PROVIDER_CLASH: provider builtin from plugin-b ignored: a built-in provider has that name/);
    expect(warnings[2]).toMatch(/W_PROVIDER_CLASH: provider alpha from plugin-c ignored: plugin plugin-a has that name/);
    // a provider written for the first contract is named as such
    expect(warnings[3]).toMatch(/provider "old" from plugin-e is malformed: options must be a zod object schema .*observe must be a function; .*apply must be a function; remove must be a function/);
    expect(warnings[4]).toMatch(/provider "resume" from plugin-e is malformed: name "resume" is taken by `aim ship resume`/);
  });

  it('loads aim’s built-in providers lazily, each satisfying the contract, and names the known ones for an unknown name', async () => {
    const entries = providerEntries(BUILTIN_PROVIDERS, [], silentReporter);
    const { provider, source } = await findProvider('vmware', entries);
    expect(source).toBe('built-in');
    expect(Object.keys(provider.options.shape)).toContain('datastore-url');
    const aws = await findProvider('aws', entries);
    expect(Object.keys(aws.provider.options.shape)).toEqual(expect.arrayContaining(['region', 'via', 'bucket', 'encrypted']));
    await expect(findProvider('aws2', entries)).rejects.toThrow(ConfigError);
    await expect(findProvider('aws2', entries)).rejects.toMatchObject({ hint: expect.stringMatching(/known providers: aws, vmware/) });
    expect(() => asProvider(42, 'p')).toThrow(/from p is malformed: not an object/);
  });
});

describe('shipping under the publications journal', () => {
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
  const request = (out: string | undefined, bucket: string, extra: object = {}) => ({ imageId, imageRef: 'test/img:1', outDir: out === undefined ? undefined : join(tmp.dir, out), options: { bucket }, ...extra });
  const store = () => repo.catalog.publications;
  const ctrlC = () => new InterruptedError('interrupted (Ctrl-C)');

  it('--dry-run observes and plans, and writes nothing: no journal, no output directory', async () => {
    const cloud: FakeCloud = { objects: new Map(), calls: [] };
    const r = await shipImage(repo, cloudProvider('fake', cloud), 'built-in', request('dry', 'b-dry', { dryRun: true }), silentReporter);
    expect(r).toMatchObject({ dryRun: true, alreadyPublished: false, target: 'bucket b-dry' });
    expect(r.plan.steps.map((s) => `${s.action} ${s.subject}`)).toEqual(['put a', 'put b']);
    expect(cloud.calls).toEqual(['observe', 'plan']);
    expect(existsSync(join(tmp.dir, 'dry'))).toBe(false);
    expect((await store().list()).filter((p) => p.target === 'bucket b-dry')).toEqual([]);
  });

  it('the same ship twice gives one publication: the second finds it by observe and the journal, and does nothing', async () => {
    const cloud: FakeCloud = { objects: new Map(), calls: [] };
    const p = cloudProvider('fake', cloud);
    const first = await shipImage(repo, p, 'built-in', request('twice-1', 'b-twice'), silentReporter);
    expect(first).toMatchObject({ alreadyPublished: false, resumed: false, published: [{ location: 'b-twice/a' }, { location: 'b-twice/b' }] });
    expect(first.publication!.state).toBe('published');
    expect(first.publication!.resources.map((r) => `${r.kind} ${r.state}`)).toEqual(['build created', 'object created', 'object created']);
    expect([...cloud.objects.values()]).toEqual([first.key, first.key]);
    const second = await shipImage(repo, p, 'built-in', request('twice-2', 'b-twice'), silentReporter);
    expect(second).toMatchObject({ alreadyPublished: true, key: first.key, artifacts: [] });
    expect(second.publication!.id).toBe(first.publication!.id);
    expect(cloud.calls.filter((c) => c.startsWith('apply'))).toEqual(['apply']);
    expect(existsSync(join(tmp.dir, 'twice-2'))).toBe(false);
    expect((await listPublications(repo)).filter((x) => x.key === first.key)).toHaveLength(1);
  });

  it('a failed apply is rolled back: every journalled resource removed newest first, the output directory too', async () => {
    const cloud: FakeCloud = { objects: new Map(), calls: [], failAt: 'b' };
    const e = await shipImage(repo, cloudProvider('fake', cloud), 'plugin-x', request('fail', 'b-fail'), silentReporter).catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 'E_PROVIDER', exitCode: 10, message: 'provider fake failed: upload of b failed', hint: expect.stringMatching(/plugin plugin-x/) });
    expect(cloud.calls.filter((c) => c.startsWith('remove'))).toEqual(['remove b', 'remove a']);
    expect(cloud.objects.size).toBe(0);
    expect(existsSync(join(tmp.dir, 'fail'))).toBe(false);
    const [pub] = (await listPublications(repo, { all: true })).filter((x) => x.target === 'bucket b-fail');
    expect(pub).toMatchObject({ state: 'failed', error: { code: 'E_PROVIDER' } });
    expect(pub!.resources.map((r) => `${r.kind} ${r.id.split('/').pop()} ${r.state}`)).toEqual(['build tar removed', 'object a removed', 'object b removed']);
  });

  it('Ctrl-C mid-apply keeps what exists in the journal; resume finishes only what is missing; rm removes it all', async () => {
    const cloud: FakeCloud = { objects: new Map(), calls: [] };
    const controller = new AbortController();
    cloud.gate = async (name, signal) => {
      if (name !== 'b') return;
      controller.abort(ctrlC());
      signal.throwIfAborted();
    };
    const p = cloudProvider('fake', cloud);
    const e = await shipImage(repo, p, 'built-in', request('int', 'b-int', { signal: controller.signal, env: { FAKE_TOKEN: 'tok-1' } }), silentReporter).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(InterruptedError);
    const id = /publication ([0-9a-f]{12}) stopped/.exec((e as Error).message)![1]!;
    expect((e as InterruptedError).hint).toBe(`aim ship resume ${id} finishes it; aim ship rm ${id} removes what it created`);
    const pub = await findPublication(store(), id.slice(0, 6));
    // the secret option is not in the journal
    expect(pub.options).toEqual({ bucket: 'b-int' });
    const view = (await listPublications(repo)).find((x) => x.id === id)!;
    expect(view.state).toBe('interrupted');
    expect(view.resources.map((r) => `${r.kind} ${r.id.split('/').pop()} ${r.state}`)).toEqual(['build tar created', 'object a created', 'object b pending']);
    expect([...cloud.objects.keys()]).toEqual(['a']);
    expect(await readdir(join(tmp.dir, 'int', 'tar'))).toEqual(['rootfs.tar']);

    cloud.gate = undefined;
    const reporter = new RecordingReporter();
    const resumed = await resumePublication(repo, p, pub, { env: { FAKE_TOKEN: 'tok-2' }, signal: new AbortController().signal }, reporter);
    expect(resumed).toMatchObject({ resumed: true, alreadyPublished: false });
    expect(resumed.publication.state).toBe('published');
    // the secret came from the environment again
    expect(cloud.calls.filter((c) => c.startsWith('apply'))).toEqual(['apply with token tok-1', 'apply (resuming) with token tok-2']);
    // observe saw "a" in place: the plan only puts "b"; the intact build was reused
    expect(resumed.published.map((x) => x.location)).toEqual(['b-int/b']);
    expect(reporter.events.some((x) => x.type === 'info' && /reusing the tar build/.test(x.message))).toBe(true);
    expect(resumed.publication.resources.map((r) => `${r.kind} ${r.id.split('/').pop()} ${r.state}`)).toEqual(['build tar created', 'object a created', 'object b created']);

    const removed = await removePublication(repo, p, pub, { env: {}, signal: new AbortController().signal }, silentReporter);
    expect(removed.removed.map((r) => r.id.split('/').pop())).toEqual(['b', 'a', 'tar']);
    expect(removed.publication.state).toBe('removed');
    expect(cloud.objects.size).toBe(0);
    expect(existsSync(join(tmp.dir, 'int'))).toBe(false);
    await expect(resumePublication(repo, p, (await store().get(id))!, { env: {}, signal: new AbortController().signal }, silentReporter)).rejects.toThrow(/was removed: there is nothing to resume/);
    await expect(findPublication(store(), 'ffffffff')).rejects.toMatchObject({ code: 'E_NO_PUBLICATION', exitCode: 3 });
  });

  it('a resume rebuilds a journalled build whose files changed, and rm refuses a publication another live run holds', async () => {
    const cloud: FakeCloud = { objects: new Map(), calls: [] };
    const controller = new AbortController();
    cloud.gate = async (name, signal) => {
      if (name !== 'a') return;
      controller.abort(ctrlC());
      signal.throwIfAborted();
    };
    const p = cloudProvider('fake', cloud);
    const e = (await shipImage(repo, p, 'built-in', request('tamper', 'b-tamper', { signal: controller.signal }), silentReporter).catch((x: unknown) => x)) as Error;
    const id = /publication ([0-9a-f]{12}) stopped/.exec(e.message)![1]!;
    await writeFile(join(tmp.dir, 'tamper', 'tar', 'rootfs.tar'), 'changed behind aim');
    cloud.gate = undefined;

    // another run holds the publication: rm waits for nobody, it says so
    const other = newLeaseOwner();
    const held = await store().claimId(id, other);
    expect(held?.busy).toBeUndefined();
    await expect(removePublication(repo, p, (await store().get(id))!, { env: {}, signal: new AbortController().signal }, silentReporter)).rejects.toMatchObject({ code: 'E_BUSY', exitCode: 9 });
    await expect(resumePublication(repo, p, (await store().get(id))!, { env: {}, signal: new AbortController().signal }, silentReporter)).rejects.toMatchObject({ code: 'E_BUSY' });
    await store().release(id, other);

    const reporter = new RecordingReporter();
    const resumed = await resumePublication(repo, p, (await store().get(id))!, { env: {}, signal: new AbortController().signal }, reporter);
    expect(reporter.events.some((x) => x.type === 'info' && /reusing/.test(x.message))).toBe(false);
    expect(resumed.artifacts[0]!.sha256).not.toBe(createHash('sha256').update('changed behind aim').digest('hex'));
    expect(resumed.publication.resources.map((r) => `${r.kind} ${r.state}`)).toEqual(['build removed', 'object created', 'build created', 'object created']);
  });

  it('two runs of the same ship at once: the second waits for the first and finds its publication', async () => {
    const cloud: FakeCloud = { objects: new Map(), calls: [] };
    let release = () => {};
    const held = new Promise<void>((r) => (release = r));
    let entered = () => {};
    const inside = new Promise<void>((r) => (entered = r));
    cloud.gate = async (name) => {
      if (name !== 'a') return;
      entered();
      await held;
    };
    const p = cloudProvider('fake', cloud);
    const first = shipImage(repo, p, 'built-in', request('race-1', 'b-race'), silentReporter);
    await inside;
    // the first run holds the lease, inside apply: the second must wait for it
    const reporter = new RecordingReporter();
    const second = shipImage(repo, p, 'built-in', request('race-2', 'b-race'), reporter);
    const deadline = Date.now() + 30_000;
    while (!reporter.events.some((x) => x.type === 'info' && /waiting for the run/.test(x.message)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(reporter.events.some((x) => x.type === 'info' && /waiting for the run/.test(x.message))).toBe(true);
    release();
    const [a, b] = await Promise.all([first, second]);
    expect(a.alreadyPublished).toBe(false);
    expect(b).toMatchObject({ alreadyPublished: true, waited: true });
    expect(b.publication!.id).toBe(a.publication!.id);
    expect(cloud.calls.filter((c) => c.startsWith('apply'))).toEqual(['apply']);
    expect(existsSync(join(tmp.dir, 'race-2'))).toBe(false);
  });

  it('without an output directory: builds in ship-builds/<publication>, kept while interrupted (gc too), removed once published, by rm, and on rollback', async () => {
    const cloud: FakeCloud = { objects: new Map(), calls: [] };
    const p = cloudProvider('fake', cloud);
    const scratch = (id: string) => join(repo.root, 'ship-builds', id);
    const controller = new AbortController();
    let duringRun: { removedShipBuilds: number; kept: string[] } | undefined;
    cloud.gate = async (name, signal) => {
      if (name !== 'b') return;
      // a run holds the publication: gc leaves its build alone
      const gc = await gcRepository(repo, silentReporter);
      duringRun = { removedShipBuilds: gc.removedShipBuilds, kept: await readdir(join(repo.root, 'ship-builds')) };
      controller.abort(ctrlC());
      signal.throwIfAborted();
    };
    const e = (await shipImage(repo, p, 'built-in', request(undefined, 'b-scratch', { signal: controller.signal }), silentReporter).catch((x: unknown) => x)) as Error;
    expect(e).toBeInstanceOf(InterruptedError);
    const id = /publication ([0-9a-f]{12}) stopped/.exec(e.message)![1]!;
    expect(duringRun).toEqual({ removedShipBuilds: 0, kept: [id] });
    const pub = (await store().get(id))!;
    expect(pub).toMatchObject({ outDir: scratch(id), outDirCreated: true });
    expect(await readdir(join(scratch(id), 'tar'))).toEqual(['rootfs.tar']);

    // interrupted: fsck and gc know the directory and keep it; an orphan beside it goes
    await mkdir(join(repo.root, 'ship-builds', 'deadbeef0000', 'tar'), { recursive: true });
    await writeFile(join(repo.root, 'ship-builds', 'deadbeef0000', 'tar', 'rootfs.tar'), 'left by nobody');
    const fsck = await fsckRepository(repo, silentReporter, { rehash: false });
    expect(fsck).toMatchObject({ ok: true, orphanShipBuilds: 1 });
    expect(await gcRepository(repo, silentReporter, { dryRun: true })).toMatchObject({ removedShipBuilds: 1 });
    expect(existsSync(join(repo.root, 'ship-builds', 'deadbeef0000'))).toBe(true);
    expect(await gcRepository(repo, silentReporter)).toMatchObject({ removedShipBuilds: 1 });
    expect(await readdir(join(repo.root, 'ship-builds'))).toEqual([id]);

    // resume continues from the scratch build, then removes it: the journal says so
    cloud.gate = undefined;
    const reporter = new RecordingReporter();
    const resumed = await resumePublication(repo, p, pub, { env: {}, signal: new AbortController().signal }, reporter);
    expect(resumed).toMatchObject({ resumed: true, buildsRemoved: true, publication: { state: 'published' } });
    expect(reporter.events.some((x) => x.type === 'info' && /reusing the tar build/.test(x.message))).toBe(true);
    expect(resumed.publication.resources.map((r) => `${r.kind} ${r.id.split('/').pop()} ${r.state}`)).toEqual(['build tar removed', 'object a created', 'object b created']);
    expect(resumed.publication.outDir).toBeUndefined();
    expect(existsSync(scratch(id))).toBe(false);

    // a run killed after its apply, before its builds went: the next run of the ship removes them
    await mkdir(join(scratch(id), 'tar'), { recursive: true });
    await writeFile(join(scratch(id), 'tar', 'rootfs.tar'), 'built');
    await store().addResource(id, { kind: 'build', id: join(scratch(id), 'tar'), state: 'created', data: { format: 'tar', subdir: 'tar' } });
    expect((await fsckRepository(repo, silentReporter, { rehash: false })).orphanShipBuilds).toBe(0);
    const again = await shipImage(repo, p, 'built-in', request(undefined, 'b-scratch'), silentReporter);
    expect(again).toMatchObject({ alreadyPublished: true, buildsRemoved: true });
    expect(again.outDir).toBeUndefined();
    expect(existsSync(scratch(id))).toBe(false);

    // a whole ship leaves no build behind; rm of an interrupted one removes its scratch directory
    const whole = await shipImage(repo, p, 'built-in', request(undefined, 'b-whole'), silentReporter);
    expect(whole).toMatchObject({ alreadyPublished: false, buildsRemoved: true });
    expect(whole.publication!.resources.map((r) => `${r.kind} ${r.state}`)).toEqual(['build removed', 'object created', 'object created']);
    expect(existsSync(scratch(whole.publication!.id))).toBe(false);
    const stop = new AbortController();
    cloud.gate = async (name, signal) => {
      if (name !== 'a') return;
      stop.abort(ctrlC());
      signal.throwIfAborted();
    };
    const cut = (await shipImage(repo, p, 'built-in', request(undefined, 'b-cut', { signal: stop.signal }), silentReporter).catch((x: unknown) => x)) as Error;
    const cutId = /publication ([0-9a-f]{12}) stopped/.exec(cut.message)![1]!;
    expect(existsSync(join(scratch(cutId), 'tar', 'rootfs.tar'))).toBe(true);
    const removed = await removePublication(repo, p, (await store().get(cutId))!, { env: {}, signal: new AbortController().signal }, silentReporter);
    expect(removed.removed.map((r) => `${r.kind} ${r.id.split('/').pop()}`)).toEqual(['object a', 'build tar']);
    expect(existsSync(scratch(cutId))).toBe(false);

    // a failed one is rolled back with its scratch directory
    const failing: FakeCloud = { objects: new Map(), calls: [], failAt: 'b' };
    await expect(shipImage(repo, cloudProvider('fake', failing), 'built-in', request(undefined, 'b-fails'), silentReporter)).rejects.toThrow(/upload of b failed/);
    expect(await readdir(join(repo.root, 'ship-builds'))).toEqual([]);
  });

  it('refuses a non-empty output directory and builds outside it, before journalling anything', async () => {
    const cloud: FakeCloud = { objects: new Map(), calls: [] };
    await mkdir(join(tmp.dir, 'full'));
    await writeFile(join(tmp.dir, 'full', 'x'), '');
    await expect(shipImage(repo, cloudProvider('fake', cloud), 'built-in', request('full', 'b-full'), silentReporter)).rejects.toThrow(/is not empty/);
    expect((await store().list()).filter((x) => x.target === 'bucket b-full')).toEqual([]);
    const escaping = { ...cloudProvider('fake', cloud), apply: async (_plan: unknown, c: { build: (f: 'tar', d: string) => Promise<unknown> }) => ({ published: [], x: await c.build('tar', '../elsewhere') }) };
    await expect(shipImage(repo, escaping as never, 'plugin-x', request('esc', 'b-esc'), silentReporter)).rejects.toThrow(/must be a subdirectory/);
    expect(existsSync(join(tmp.dir, 'elsewhere'))).toBe(false);
    expect(existsSync(join(tmp.dir, 'esc'))).toBe(false);
  });

  it('keeps the code of an aim error a plugin threw from its own copy of aim', async () => {
    const cloud: FakeCloud = { objects: new Map(), calls: [] };
    const foreign = Object.assign(new Error('bucket b-own is not yours'), { code: 'E_BUCKET_FORBIDDEN', exitCode: 10, hint: 'ask the owner' });
    const p = { ...cloudProvider('fake', cloud), observe: async () => Promise.reject(foreign) };
    await expect(shipImage(repo, p as never, 'plugin-y', request('own', 'b-own'), silentReporter)).rejects.toMatchObject({ code: 'E_BUCKET_FORBIDDEN', exitCode: 10, hint: 'ask the owner', message: 'bucket b-own is not yours' });
  });
});
