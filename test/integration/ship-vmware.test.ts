import { createHash, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { execa } from 'execa';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parseDatastoreUrl, type DatastoreSettings } from '../../providers/vmware/datastore.js';
import { datastoreSettings, vmware, vmwareOptions } from '../../providers/vmware/index.js';
import { uploadFiles, type UploadFile } from '../../providers/vmware/upload.js';
import { newLeaseOwner } from '../../src/core/repository/catalog-publications.js';
import { SqliteCatalog } from '../../src/core/repository/sqlite-catalog.js';
import { idempotencyKey, openJournal } from '../../src/core/ship/journal.js';
import { validateOptions } from '../../src/core/ship/options.js';
import { removeResources } from '../../src/core/ship/publication-run.js';
import type { AnyProvider, Journal } from '../../src/core/ship/provider.js';
import { AimError, InterruptedError } from '../../src/lib/errors.js';
import { RecordingReporter, silentReporter } from '../../src/lib/reporter.js';
import { FakeDatastore } from '../helpers/datastore.js';
import { tempDir } from '../helpers/tmp.js';

let tmp: Awaited<ReturnType<typeof tempDir>>;
let small: string;
let big: string;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
let smallSha: string;
let bigSha: string;
let ds: FakeDatastore;
let base: string;
let catalog: SqliteCatalog;
let journal: Journal;
let publication: string;
const env = { AIM_VMWARE_USER: 'root', AIM_VMWARE_PASSWORD: 's3cret' };

beforeAll(async () => {
  tmp = await tempDir('aim-ds-');
  const a = randomBytes(300_000);
  const b = randomBytes(24 << 20);
  small = join(tmp.dir, 'disk.vmdk');
  big = join(tmp.dir, 'appliance.ova');
  await writeFile(small, a);
  await writeFile(big, b);
  smallSha = sha(a);
  bigSha = sha(b);
  catalog = new SqliteCatalog(join(tmp.dir, 'catalog.db'));
  catalog.migrate();
});
afterAll(async () => {
  await catalog.close();
  await tmp.cleanup();
});
// every test works for a publication of its own, journalled in a real catalog
beforeEach(async () => {
  const claim = await catalog.publications.claim({ key: idempotencyKey('a'.repeat(64), 'vmware', String(Math.random())), provider: 'vmware', source: 'built-in', imageId: 'a'.repeat(64), imageRef: 'web', target: 't', options: {} }, newLeaseOwner());
  publication = claim.busy === undefined ? claim.publication.id : '';
  journal = openJournal(catalog.publications, publication, []);
});
afterEach(async () => ds?.stop());

async function start(tls?: { key: Buffer; cert: Buffer }): Promise<void> {
  ds = new FakeDatastore(tls);
  base = await ds.start();
}

const url = () => `${base}/folder/aim/nginx test?dcPath=ha-datacenter&dsName=datastore1`;
function settings(extra: Partial<DatastoreSettings> = {}): DatastoreSettings {
  return { target: parseDatastoreUrl(url()), credentials: { user: 'root', password: 's3cret' }, ...extra };
}
const files = (): UploadFile[] => [
  { path: small, name: 'web.vmdk', bytes: 300_000, sha256: smallSha },
  { path: big, name: 'web.ova', bytes: 24 << 20, sha256: bigSha },
];
const upload = (extra: { settings?: DatastoreSettings; signal?: AbortSignal; overwrite?: boolean; reporter?: RecordingReporter } = {}) =>
  uploadFiles(extra.settings ?? settings(), files(), { journal, reporter: extra.reporter ?? new RecordingReporter(), signal: extra.signal ?? new AbortController().signal, overwrite: extra.overwrite ?? false });
const states = async () => (await catalog.publications.resources(publication)).map((r) => `${r.id.split('/').pop()} ${r.state}`);

async function failure(p: Promise<unknown>): Promise<AimError> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(AimError);
  return e as AimError;
}

/** What the engine's rollback and `aim ship rm` do: the provider removes each journalled resource, newest first. */
async function removeAll(reporter = new RecordingReporter()) {
  const p = (await catalog.publications.get(publication))!;
  const options = validateOptions('vmware', vmwareOptions, { 'datastore-url': url() });
  return removeResources(catalog.publications, p, vmware as unknown as AnyProvider, options, { reporter, signal: new AbortController().signal, env, source: 'built-in' });
}

describe('vmware uploads on the provider contract (journalled) against a local datastore', () => {
  it('HEADs, then PUTs each file with basic auth, dcPath/dsName and the exact bytes, over one connection, journalling each file', async () => {
    await start();
    const reporter = new RecordingReporter();
    const published = await upload({ reporter });
    const auth = `Basic ${Buffer.from('root:s3cret').toString('base64')}`;
    expect(ds.seen.map((s) => `${s.method} ${s.path}`)).toEqual([
      'HEAD /folder/aim/nginx test/web.vmdk',
      'HEAD /folder/aim/nginx test/web.ova',
      'PUT /folder/aim/nginx test/web.vmdk',
      'PUT /folder/aim/nginx test/web.ova',
    ]);
    for (const s of ds.seen) {
      expect(s.query).toEqual({ dcPath: 'ha-datacenter', dsName: 'datastore1' });
      expect(s.auth).toBe(auth);
    }
    expect(ds.seen[2]).toMatchObject({ bytes: 300_000, sha256: smallSha });
    expect(ds.seen[3]).toMatchObject({ bytes: 24 << 20, sha256: bigSha });
    expect(published.map((p) => [p.location, p.sha256])).toEqual([
      ['[datastore1] aim/nginx test/web.vmdk', smallSha],
      ['[datastore1] aim/nginx test/web.ova', bigSha],
    ]);
    const resources = await catalog.publications.resources(publication);
    expect(resources.map((r) => [r.kind, r.id, r.state, r.data.sha256, r.data.bytes])).toEqual([
      ['datastore file', '[datastore1] aim/nginx test/web.vmdk', 'created', smallSha, 300_000],
      ['datastore file', '[datastore1] aim/nginx test/web.ova', 'created', bigSha, 24 << 20],
    ]);
    expect(reporter.events.some((e) => e.type === 'progress' && e.done === 24 << 20 && e.total === 24 << 20)).toBe(true);
    // keep-alive: one socket for all four requests, and none left open afterwards
    expect(ds.connections).toBe(1);
    expect(await ds.settledConnections()).toBe(0);

    // the same files again: the journal and HEAD's sizes agree, nothing is sent
    ds.seen.length = 0;
    await upload();
    expect(ds.seen.map((s) => s.method)).toEqual(['HEAD', 'HEAD']);
  });

  it('stops on 401 before sending any data or journalling anything', async () => {
    await start();
    const e = await failure(upload({ settings: settings({ credentials: { user: 'root', password: 'wrong' } }) }));
    expect(e.code).toBe('E_DATASTORE_AUTH');
    expect(e.exitCode).toBe(10);
    expect(ds.seen.map((s) => s.method)).toEqual(['HEAD']);
    expect(await states()).toEqual([]);
  });

  it('never overwrites a file that is not the publication’s unless told to (observe + plan refuse before any build)', async () => {
    await start();
    ds.stored.set('/folder/aim/nginx test/web.ova', 'old');
    const options = validateOptions('vmware', vmwareOptions, { 'datastore-url': url(), name: 'web' });
    const target = { provider: 'vmware', image: { id: 'a'.repeat(64), ref: 'web' }, options, where: 'w', key: 'k', journal: [], earlier: async () => [] };
    const observed = await vmware.observe(target, { reporter: silentReporter, signal: new AbortController().signal, env, requireFormat: () => undefined, exec: async () => ({ stdout: '', stderr: '' }) });
    expect(() => vmware.plan(target.image, observed, options)).toThrow(/\[datastore1\] aim\/nginx test\/web\.ova already exists/);
    const e2 = await failure(upload());
    expect(e2.code).toBe('E_DATASTORE_EXISTS');
    expect(ds.seen.filter((s) => s.method !== 'HEAD')).toEqual([]);
    expect(ds.stored.get('/folder/aim/nginx test/web.ova')).toBe('old');

    await upload({ overwrite: true });
    expect(ds.stored.get('/folder/aim/nginx test/web.ova')).toBe(bigSha);
  });

  it('on a server error mid-upload the journal names both files (one cut short); removing it DELETEs them, newest first (no retry)', async () => {
    await start();
    ds.behave = (req, res, seen) => {
      if (seen.method !== 'PUT' || !seen.path.endsWith('.ova')) return false;
      let got = 0;
      req.on('data', (c: Buffer) => {
        got += c.length;
        if (got > 2 << 20 && !res.headersSent) {
          ds.stored.set(seen.path, 'partial');
          res.writeHead(500, { Connection: 'close' }).end('disk full');
          req.socket.destroy();
        }
      });
      return true;
    };
    const e = await failure(upload());
    expect(e.code).toBe('E_DATASTORE_HTTP');
    expect(await states()).toEqual(['web.vmdk created', 'web.ova pending']);
    ds.behave = () => false;
    const reporter = new RecordingReporter();
    const { removed, left } = await removeAll(reporter);
    expect(left).toEqual([]);
    expect(removed.map((r) => r.id.split('/').pop())).toEqual(['web.ova', 'web.vmdk']);
    const methods = ds.seen.map((s) => `${s.method} ${s.path.split('/').pop()}`);
    expect(methods.filter((m) => m.startsWith('PUT'))).toEqual(['PUT web.vmdk', 'PUT web.ova']);
    expect(methods.filter((m) => m.startsWith('DELETE'))).toEqual(['DELETE web.ova', 'DELETE web.vmdk']);
    expect([...ds.stored.keys()]).toEqual([]);
    expect(await states()).toEqual(['web.vmdk removed', 'web.ova removed']);
    expect(reporter.events.filter((x) => x.type === 'info' && /^removed datastore file \[datastore1\] aim\/nginx test\/web\.(ova|vmdk)$/.test(x.message))).toHaveLength(2);
    expect(await ds.settledConnections()).toBe(0);
  });

  it('on Ctrl-C (abort) mid-upload stops at once, keeps the journal, and a resume sends only what is missing', async () => {
    await start();
    const controller = new AbortController();
    ds.behave = (req, _res, seen) => {
      if (seen.method === 'PUT' && seen.path.endsWith('.ova')) {
        let got = 0;
        req.on('data', (c: Buffer) => {
          got += c.length;
          if (got > 1 << 20 && !controller.signal.aborted) controller.abort(new InterruptedError('interrupted (Ctrl-C)'));
        });
      }
      return false;
    };
    const e = await failure(upload({ signal: controller.signal }));
    expect(e.code).toBe('E_INTERRUPTED');
    expect(e.exitCode).toBe(130);
    expect(ds.seen.filter((s) => s.method === 'DELETE')).toEqual([]);
    expect(await states()).toEqual(['web.vmdk created', 'web.ova pending']);
    // what the datastore kept of the cut-short OVA is named by the journal (pending)
    await ds.settledConnections();
    expect(ds.stored.get('/folder/aim/nginx test/web.ova')).toBe('partial');

    ds.behave = () => false;
    ds.seen.length = 0;
    const reporter = new RecordingReporter();
    await upload({ reporter });
    expect(ds.seen.map((s) => `${s.method} ${s.path.split('/').pop()}`)).toEqual(['HEAD web.vmdk', 'HEAD web.ova', 'PUT web.ova']);
    expect(reporter.events.some((x) => x.type === 'info' && /web\.vmdk is already uploaded .*skipped/.test(x.message))).toBe(true);
    expect(ds.stored.get('/folder/aim/nginx test/web.vmdk')).toBe(smallSha);
    expect(ds.stored.get('/folder/aim/nginx test/web.ova')).toBe(bigSha);
    expect(await states()).toEqual(['web.vmdk created', 'web.ova created']);
  });

  it('a journalled file whose bytes differ from the new build is uploaded again, not skipped', async () => {
    await start();
    await upload();
    // the journal says created with a different sha256 (a build that changed)
    const vmdk = journal.find('datastore file', '[datastore1] aim/nginx test/web.vmdk')!;
    await journal.created(vmdk, { data: { sha256: '0'.repeat(64) } });
    ds.seen.length = 0;
    await upload();
    expect(ds.seen.filter((s) => s.method === 'PUT').map((s) => s.path.split('/').pop())).toEqual(['web.vmdk']);
  });
});

describe('datastore upload over HTTPS with a self-signed certificate', () => {
  it('is refused unless --insecure, then works', async () => {
    const key = join(tmp.dir, 'key.pem');
    const cert = join(tmp.dir, 'cert.pem');
    await execa('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1'], { timeout: 60_000 });
    await start({ key: await readFile(key), cert: await readFile(cert) });
    const e = await failure(upload());
    expect(e.code).toBe('E_DATASTORE_HTTP');
    expect(e.message).toMatch(/self[- ]signed/i);
    expect(e.hint).toMatch(/--insecure/);
    expect(ds.seen).toEqual([]);
    const published = await upload({ settings: settings({ insecure: true }) });
    expect(published.map((p) => p.sha256)).toEqual([smallSha, bigSha]);
    expect(ds.connections).toBe(1);
  });
});

describe('vmware datastore settings', () => {
  it('refuses bad URLs and missing credentials before any work', () => {
    const url = 'https://esxi.test/folder/aim?dcPath=ha-datacenter&dsName=datastore1';
    expect(() => datastoreSettings({ 'datastore-url': url, insecure: false }, {})).toThrow(/AIM_VMWARE_USER and AIM_VMWARE_PASSWORD not set/);
    expect(() => datastoreSettings({ 'datastore-url': url, insecure: false }, { AIM_VMWARE_USER: 'u' })).toThrow(/AIM_VMWARE_PASSWORD not set/);
    expect(datastoreSettings({ 'datastore-url': url, insecure: true }, { AIM_VMWARE_USER: 'u', AIM_VMWARE_PASSWORD: 'p' })).toMatchObject({
      target: { origin: 'https://esxi.test', folder: 'aim', dcPath: 'ha-datacenter', dsName: 'datastore1' },
      insecure: true,
    });
    expect(datastoreSettings({ insecure: false }, {})).toBeUndefined();
    expect(() => parseDatastoreUrl('https://esxi.test/ui/aim?dcPath=a&dsName=b')).toThrow(/must start with \/folder/);
    expect(() => parseDatastoreUrl('https://esxi.test/folder/aim')).toThrow(/dcPath and dsName/);
    expect(() => parseDatastoreUrl('https://root:pw@esxi.test/folder/aim?dcPath=a&dsName=b')).toThrow(/credentials/);
    expect(() => parseDatastoreUrl('ftp://esxi.test/folder/aim?dcPath=a&dsName=b')).toThrow(/https/);
  });
});
