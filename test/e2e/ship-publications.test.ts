/**
 * Publications end to end, through the CLI and a local datastore: the same ship twice, two at
 * once, kill -9 and Ctrl-C in the middle of an upload, then `aim ship resume` and `aim ship rm`.
 * Real vmware builds (VMDK + OVA) of a small image with a stand-in kernel core.
 */
import { execa, type ResultPromise } from 'execa';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { openRepository } from '../../src/core/repository/repository.js';
import { aim, runJs } from '../helpers/cli.js';
import { DATASTORE_PASSWORD, DATASTORE_USER, FakeDatastore } from '../helpers/datastore.js';
import { writeFakeKernelTree } from '../helpers/fake-kernel.js';
import { tempDir } from '../helpers/tmp.js';

interface Resource {
  kind: string;
  id: string;
  state: string;
  data: { sha256?: string; bytes?: number };
}
interface Publication {
  id: string;
  key: string;
  state: string;
  resources: Resource[];
}
interface ShipJson {
  alreadyPublished: boolean;
  resumed: boolean;
  waited: boolean;
  publication: Publication;
  artifacts: { path: string; sha256: string }[];
  buildsRemoved: boolean;
  outDir?: string;
  published: { location: string; sha256: string }[];
}
interface ErrorJson {
  error: { code: string; message: string; hint?: string; exitCode: number };
}

/** Larger than the socket buffers a held upload can fill (see beforeAll). */
const PAYLOAD_BYTES = 16 << 20;
let tmp: Awaited<ReturnType<typeof tempDir>>;
let repo: string;
let ds: FakeDatastore;
let origin: string;
const env = { AIM_VMWARE_USER: DATASTORE_USER, AIM_VMWARE_PASSWORD: DATASTORE_PASSWORD };
const run = <T>(...args: string[]) => aim<T>([...args, '--repo', repo], { env });
const url = (folder: string) => `${origin}/folder/${folder}?dcPath=ha-datacenter&dsName=datastore1`;
/** Without `out`, aim builds in its scratch space: <repo>/ship-builds/<publication>. */
const ship = (folder: string, out?: string) => ['ship', 'vmware', 'slim/app:1', ...(out ? ['--out', join(tmp.dir, out)] : []), '--datastore-url', url(folder)];
const scratch = (id: string) => join(repo, 'ship-builds', id);
/** Starts `aim … --json` without waiting for it. */
const spawn = (args: string[], extraEnv: Record<string, string> = {}): ResultPromise =>
  execa(process.execPath, [runJs, ...args, '--repo', repo, '--json'], { env: { ...process.env, ...env, ...extraEnv }, reject: false, timeout: 300_000 });
const methods = (folder: string) => ds.seen.filter((s) => s.path.startsWith(`/folder/${folder}/`) && s.method !== 'HEAD').map((s) => `${s.method} ${s.path.split('/').pop()}`);
const summary = (p: Publication) => p.resources.map((r) => `${r.kind} ${r.id.split('/').pop()} ${r.state}`);

async function listed(id: string): Promise<Publication> {
  const list = await run<{ publications: Publication[] }>('ship', 'list', '--all');
  expect(list.exitCode, list.stderr).toBe(0);
  return list.json.publications.find((p) => p.id === id)!;
}

/** Holds the next PUT of `file` in the middle of its body (see FakeDatastore.hold). */
const holdPut = (file: string) => ds.hold((s) => s.method === 'PUT' && s.path.endsWith(`/${file}`));

async function until(what: string, check: () => boolean, ms = 120_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

beforeAll(async () => {
  tmp = await tempDir('aim-publications-');
  repo = join(tmp.dir, 'repo');
  await mkdir(join(tmp.dir, 'app'));
  await writeFile(join(tmp.dir, 'app', 'app'), '#!/bin/sh\n', { mode: 0o755 });
  // Incompressible bytes that make each upload larger than the socket buffers between aim and the
  // datastore (here up to 4 MiB of send buffer; a paused reader's receive buffer stays small).
  // Without them the OVA was 2 MB: a held PUT could sit whole in those buffers when the kill came
  // late on a loaded machine, and the datastore then read a complete body, not a cut one.
  await writeFile(join(tmp.dir, 'app', 'payload'), randomBytes(PAYLOAD_BYTES));
  expect((await run('repo', 'init')).exitCode).toBe(0);
  const app = await run<{ id: string }>('image', 'import', join(tmp.dir, 'app'), '--tag', 'slim/app:1');
  expect(app.exitCode, app.stderr).toBe(0);
  expect((await run('image', 'import', await writeFakeKernelTree(join(tmp.dir, 'kernel'), '6.1.0-1-amd64'), '--tag', 'core/kernel:test')).exitCode).toBe(0);
  const r = await openRepository(repo);
  await r.catalog.putSlimReport(app.json.id, { entrypoint: ['/app'] });
  await r.close();
  ds = new FakeDatastore();
  origin = await ds.start();
}, 300_000);
beforeEach(() => {
  ds.behave = () => false;
});
afterAll(async () => {
  await ds.stop();
  await tmp.cleanup();
});

describe('publications through the CLI (vmware, local datastore)', () => {
  it('the same ship twice gives one publication: the second reports it, builds and sends nothing; without --out no build is left behind', async () => {
    const first = await run<ShipJson>(...ship('twice'));
    expect(first.exitCode, first.stderr).toBe(0);
    expect(first.json).toMatchObject({ alreadyPublished: false, buildsRemoved: true, publication: { state: 'published' } });
    expect(first.json.outDir).toBeUndefined();
    // built in aim's scratch space, uploaded, then removed: the journal says so
    expect(first.json.artifacts.every((a) => a.path.startsWith(`${scratch(first.json.publication.id)}/`))).toBe(true);
    expect(summary(first.json.publication)).toEqual(['build vmdk removed', 'build ova removed', 'datastore file slim-app-1.vmdk created', 'datastore file slim-app-1.ova created']);
    expect(existsSync(scratch(first.json.publication.id))).toBe(false);
    expect(ds.stored.get('/folder/twice/slim-app-1.ova')).toBe(first.json.artifacts.find((a) => a.path.endsWith('.ova'))!.sha256);
    const second = await run<ShipJson>(...ship('twice', 'twice-2'));
    expect(second.exitCode, second.stderr).toBe(0);
    expect(second.json).toMatchObject({ alreadyPublished: true, artifacts: [], publication: { id: first.json.publication.id, state: 'published' } });
    expect(second.json.published.map((p) => p.sha256)).toEqual(first.json.published.map((p) => p.sha256));
    expect(existsSync(join(tmp.dir, 'twice-2'))).toBe(false);
    expect(methods('twice')).toEqual(['PUT slim-app-1.vmdk', 'PUT slim-app-1.ova']);
    const list = await run<{ publications: Publication[] }>('ship', 'list');
    expect(list.json.publications.filter((p) => p.key === first.json.publication.key)).toHaveLength(1);
  }, 300_000);

  it('two runs at once: the second waits for the first (which holds the lease), then finds its publication', async () => {
    const held = holdPut('slim-app-1.vmdk');
    const first = spawn(ship('race', 'race-1'));
    await held;
    // the first run is inside its upload, holding the lease; the second starts now
    let stderr = '';
    const second = spawn(ship('race', 'race-2'), { DEBUG: 'aim:ship' });
    second.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    await until('the second run to wait', () => /aim:ship waiting: publication [0-9a-f]{12}/.test(stderr));
    // let the first run's held PUT go on: its body is read and stored as usual from here
    const put = ds.seen.find((s) => s.method === 'PUT' && s.path === '/folder/race/slim-app-1.vmdk')!;
    expect(put).toBeDefined();
    ds.release();
    const [a, b] = await Promise.all([first, second]);
    expect(a.exitCode, String(a.stderr)).toBe(0);
    expect(b.exitCode, String(b.stderr)).toBe(0);
    const one = JSON.parse(String(a.stdout)) as ShipJson;
    const two = JSON.parse(String(b.stdout)) as ShipJson;
    expect(one.alreadyPublished).toBe(false);
    expect(two).toMatchObject({ alreadyPublished: true, waited: true, publication: { id: one.publication.id } });
    expect(methods('race')).toEqual(['PUT slim-app-1.vmdk', 'PUT slim-app-1.ova']);
    expect(ds.stored.get('/folder/race/slim-app-1.vmdk')).toBe(one.published[0]!.sha256);
  }, 300_000);

  it('kill -9 in the middle of the OVA upload (no --out): the journal names it pending, gc keeps its scratch build; aim ship resume sends only the OVA and removes the build; aim ship rm removes both files', async () => {
    const held = holdPut('slim-app-1.ova');
    const child = spawn(ship('killed'));
    await held;
    child.kill('SIGKILL');
    const killed = await child;
    expect(killed.signal).toBe('SIGKILL');
    const list = await run<{ publications: Publication[] }>('ship', 'list', '--state', 'interrupted');
    const pub = list.json.publications.find((p) => p.resources.some((r) => r.id.includes('killed/')))!;
    expect(pub).toBeDefined();
    expect(summary(pub)).toEqual(['build vmdk created', 'build ova created', 'datastore file slim-app-1.vmdk created', 'datastore file slim-app-1.ova pending']);
    // the datastore reads on and finds the connection gone: what arrived of the OVA stays (the journal names it)
    ds.release();
    await until('the datastore to keep the partial OVA', () => ds.stored.get('/folder/killed/slim-app-1.ova') === 'partial', 30_000);
    // its builds are in aim's scratch space; the publication is interrupted (its run is dead), so gc keeps them
    const built = pub.resources.filter((r) => r.kind === 'build').map((r) => r.id);
    expect(built).toEqual([join(scratch(pub.id), 'vmdk'), join(scratch(pub.id), 'ova')]);
    const gc = await run<{ removedShipBuilds: number }>('repo', 'gc');
    expect(gc.exitCode, gc.stderr).toBe(0);
    expect(gc.json.removedShipBuilds).toBe(0);
    expect(existsSync(join(scratch(pub.id), 'vmdk', 'disk.vmdk'))).toBe(true);

    const resumed = await run<ShipJson>('ship', 'resume', pub.id.slice(0, 6));
    expect(resumed.exitCode, resumed.stderr).toBe(0);
    expect(resumed.json).toMatchObject({ resumed: true, alreadyPublished: false, publication: { id: pub.id, state: 'published' } });
    // the builds were reused from the scratch space (same files), the VMDK was not sent again
    expect(methods('killed')).toEqual(['PUT slim-app-1.vmdk', 'PUT slim-app-1.ova', 'PUT slim-app-1.ova']);
    expect(resumed.json.artifacts.map((a) => a.path)).toEqual([join(built[0]!, 'disk.vmdk'), join(built[1]!, 'slim-app-1.ova')]);
    expect(ds.stored.get('/folder/killed/slim-app-1.vmdk')).toBe(resumed.json.artifacts[0]!.sha256);
    expect(ds.stored.get('/folder/killed/slim-app-1.ova')).toBe(resumed.json.artifacts[1]!.sha256);
    // published: the scratch builds are gone
    expect(resumed.json.buildsRemoved).toBe(true);
    expect(summary(resumed.json.publication)).toEqual(['build vmdk removed', 'build ova removed', 'datastore file slim-app-1.vmdk created', 'datastore file slim-app-1.ova created']);
    expect(existsSync(scratch(pub.id))).toBe(false);

    const removed = await run<{ removed: Resource[]; publication: Publication }>('ship', 'rm', pub.id);
    expect(removed.exitCode, removed.stderr).toBe(0);
    expect(removed.json.removed.map((r) => `${r.kind} ${r.id.split('/').pop()}`)).toEqual(['datastore file slim-app-1.ova', 'datastore file slim-app-1.vmdk']);
    expect(methods('killed').slice(3)).toEqual(['DELETE slim-app-1.ova', 'DELETE slim-app-1.vmdk']);
    expect([...ds.stored.keys()].filter((k) => k.startsWith('/folder/killed/'))).toEqual([]);
    const after = await listed(pub.id);
    expect(after.state).toBe('removed');
    expect(after.resources.every((r) => r.state === 'removed')).toBe(true);
    // removed: no longer listed by default, not resumable
    expect((await run<{ publications: Publication[] }>('ship', 'list')).json.publications.some((p) => p.id === pub.id)).toBe(false);
    const again = await run<ErrorJson>('ship', 'resume', pub.id);
    expect(again.exitCode).toBe(2);
    expect(again.json.error.message).toMatch(/was removed/);
  }, 300_000);

  it.each(['SIGINT', 'SIGTERM'] as const)('%s (Ctrl-C, a service stop) in the middle of an upload: exit 130, a consistent journal, nothing deleted; aim ship rm then removes what exists', async (signal) => {
    const folder = signal.toLowerCase();
    // SIGTERM's run builds in aim's scratch space (no --out): rm removes it there too
    const out = signal === 'SIGINT' ? folder : undefined;
    const held = holdPut('slim-app-1.ova');
    const child = spawn(ship(folder, out));
    await held;
    child.kill(signal);
    const r = await child;
    expect(r.exitCode, String(r.stderr)).toBe(130);
    const error = (JSON.parse(String(r.stdout)) as ErrorJson).error;
    expect(error.code).toBe('E_INTERRUPTED');
    const id = /publication ([0-9a-f]{12}) stopped/.exec(error.message)![1]!;
    expect(error.hint).toBe(`aim ship resume ${id} finishes it; aim ship rm ${id} removes what it created`);
    ds.release();
    await until('the datastore to keep the partial OVA', () => ds.stored.get(`/folder/${folder}/slim-app-1.ova`) === 'partial', 30_000);
    const pub = await listed(id);
    expect(pub.state).toBe('interrupted');
    // consistent: every file on the datastore is in the journal, the cut-short one as pending
    expect(summary(pub)).toEqual(['build vmdk created', 'build ova created', 'datastore file slim-app-1.vmdk created', 'datastore file slim-app-1.ova pending']);
    expect([...ds.stored.keys()].filter((k) => k.startsWith(`/folder/${folder}/`)).sort()).toEqual([`/folder/${folder}/slim-app-1.ova`, `/folder/${folder}/slim-app-1.vmdk`]);
    expect(methods(folder).filter((m) => m.startsWith('DELETE'))).toEqual([]);
    const buildDir = out ? join(tmp.dir, out) : scratch(id);
    expect(existsSync(join(buildDir, 'vmdk', 'disk.vmdk'))).toBe(true);

    const removed = await run<{ publication: Publication }>('ship', 'rm', id);
    expect(removed.exitCode, removed.stderr).toBe(0);
    expect(methods(folder).filter((m) => m.startsWith('DELETE'))).toEqual(['DELETE slim-app-1.ova', 'DELETE slim-app-1.vmdk']);
    expect([...ds.stored.keys()].filter((k) => k.startsWith(`/folder/${folder}/`))).toEqual([]);
    expect(removed.json.publication.state).toBe('removed');
    expect(existsSync(buildDir)).toBe(false);
  }, 300_000);

  it('clear errors: an unknown publication, a datastore that refuses the removal (the journal keeps it)', async () => {
    const unknown = await run<ErrorJson>('ship', 'rm', 'feedfacecafe');
    expect(unknown.exitCode).toBe(3);
    expect(unknown.json.error).toMatchObject({ code: 'E_NO_PUBLICATION', hint: 'list them with: aim ship list' });
    const shipped = await run<ShipJson>(...ship('refuse', 'refuse'));
    expect(shipped.exitCode, shipped.stderr).toBe(0);
    ds.behave = (req, res, seen) => {
      if (seen.method !== 'DELETE' || !seen.path.endsWith('.vmdk')) return false;
      req.resume();
      res.writeHead(403, { 'Content-Length': 0 }).end();
      return true;
    };
    const refused = await run<ErrorJson>('ship', 'rm', shipped.json.publication.id);
    expect(refused.exitCode).toBe(10);
    expect(refused.json.error).toMatchObject({ code: 'E_DATASTORE_AUTH', message: expect.stringMatching(/1 resource\(s\) could not be removed: datastore file \[datastore1\] refuse\/slim-app-1\.vmdk/) });
    const left = await listed(shipped.json.publication.id);
    expect(left.state).toBe('removing');
    // each resource on its own: the builds went, the refused file stays in the journal as created
    expect(summary(left)).toEqual(['build vmdk removed', 'build ova removed', 'datastore file slim-app-1.vmdk created', 'datastore file slim-app-1.ova removed']);
    ds.behave = () => false;
    const retried = await run<{ publication: Publication }>('ship', 'rm', shipped.json.publication.id);
    expect(retried.exitCode, retried.stderr).toBe(0);
    expect(retried.json.publication.state).toBe('removed');
    expect([...ds.stored.keys()].filter((k) => k.startsWith('/folder/refuse/'))).toEqual([]);
    expect(existsSync(join(tmp.dir, 'refuse'))).toBe(false);
  }, 300_000);
});
