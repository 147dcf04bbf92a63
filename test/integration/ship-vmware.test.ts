import { createHash, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { execa } from 'execa';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { checkDatastore, parseDatastoreUrl, uploadToDatastore, type DatastoreOptions } from '../../providers/vmware/datastore.js';
import { datastoreSettings } from '../../providers/vmware/index.js';
import { AimError } from '../../src/lib/errors.js';
import { RecordingReporter } from '../../src/lib/reporter.js';
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
});
afterAll(async () => tmp.cleanup());
afterEach(async () => ds?.stop());

async function start(tls?: { key: Buffer; cert: Buffer }): Promise<void> {
  ds = new FakeDatastore(tls);
  base = await ds.start();
}

function options(extra: Partial<DatastoreOptions> = {}): DatastoreOptions {
  return {
    target: parseDatastoreUrl(`${base}/folder/aim/nginx test?dcPath=ha-datacenter&dsName=datastore1`),
    credentials: { user: 'root', password: 's3cret' },
    reporter: new RecordingReporter(),
    ...extra,
  };
}
const files = () => [
  { path: small, name: 'web.vmdk' },
  { path: big, name: 'web.ova' },
];

async function failure(p: Promise<unknown>): Promise<AimError> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(AimError);
  return e as AimError;
}

describe('datastore upload (ESXi/vCenter HTTP file API) against a local server', () => {
  it('HEADs, then PUTs each file with basic auth, dcPath/dsName and the exact bytes, over one connection', async () => {
    await start();
    const reporter = new RecordingReporter();
    const published = await uploadToDatastore(options({ reporter }), files());
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
    expect(reporter.events.some((e) => e.type === 'progress' && e.done === 24 << 20 && e.total === 24 << 20)).toBe(true);
    // keep-alive: one socket for all four requests, and none left open afterwards
    expect(ds.connections).toBe(1);
    expect(await ds.settledConnections()).toBe(0);
  });

  it('stops on 401 before sending any data', async () => {
    await start();
    const e = await failure(uploadToDatastore(options({ credentials: { user: 'root', password: 'wrong' } }), files()));
    expect(e.code).toBe('E_DATASTORE_AUTH');
    expect(e.exitCode).toBe(10);
    expect(ds.seen.map((s) => s.method)).toEqual(['HEAD']);
  });

  it('never overwrites an existing file unless told to', async () => {
    await start();
    ds.stored.set('/folder/aim/nginx test/web.ova', 'old');
    const e = await failure(checkDatastore(options(), ['web.vmdk', 'web.ova']));
    expect(e.code).toBe('E_DATASTORE_EXISTS');
    expect(e.message).toMatch(/\[datastore1\] aim\/nginx test\/web\.ova already exists/);
    const e2 = await failure(uploadToDatastore(options(), files()));
    expect(e2.code).toBe('E_DATASTORE_EXISTS');
    expect(ds.seen.filter((s) => s.method !== 'HEAD')).toEqual([]);
    expect(ds.stored.get('/folder/aim/nginx test/web.ova')).toBe('old');

    await uploadToDatastore(options({ overwrite: true }), files());
    expect(ds.stored.get('/folder/aim/nginx test/web.ova')).toBe(bigSha);
  });

  it('on a server error mid-upload DELETEs what this run sent (no retry)', async () => {
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
    const reporter = new RecordingReporter();
    const e = await failure(uploadToDatastore(options({ reporter }), files()));
    expect(e.code).toBe('E_DATASTORE_HTTP');
    const methods = ds.seen.map((s) => `${s.method} ${s.path.split('/').pop()}`);
    expect(methods.filter((m) => m.startsWith('PUT'))).toEqual(['PUT web.vmdk', 'PUT web.ova']);
    expect(methods.filter((m) => m.startsWith('DELETE'))).toEqual(['DELETE web.ova', 'DELETE web.vmdk']);
    expect([...ds.stored.keys()]).toEqual([]);
    expect(reporter.events.filter((x) => x.type === 'info' && /removed/.test(x.message))).toHaveLength(2);
    expect(await ds.settledConnections()).toBe(0);
  });

  it('on Ctrl-C (abort) mid-upload stops, DELETEs what it sent and reports an interruption', async () => {
    await start();
    const controller = new AbortController();
    ds.behave = (req, _res, seen) => {
      if (seen.method === 'PUT' && seen.path.endsWith('.ova')) {
        let got = 0;
        req.on('data', (c: Buffer) => {
          got += c.length;
          if (got > 1 << 20) controller.abort();
        });
      }
      return false;
    };
    const e = await failure(uploadToDatastore(options({ signal: controller.signal }), files()));
    expect(e.code).toBe('E_INTERRUPTED');
    expect(e.exitCode).toBe(130);
    expect(ds.seen.filter((s) => s.method === 'DELETE').map((s) => s.path.split('/').pop())).toEqual(['web.ova', 'web.vmdk']);
    expect([...ds.stored.keys()]).toEqual([]);
  });
});

describe('datastore upload over HTTPS with a self-signed certificate', () => {
  it('is refused unless --insecure, then works', async () => {
    const key = join(tmp.dir, 'key.pem');
    const cert = join(tmp.dir, 'cert.pem');
    await execa('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1'], { timeout: 60_000 });
    await start({ key: await readFile(key), cert: await readFile(cert) });
    const e = await failure(uploadToDatastore(options(), files()));
    expect(e.code).toBe('E_DATASTORE_HTTP');
    expect(e.message).toMatch(/self[- ]signed/i);
    expect(e.hint).toMatch(/--insecure/);
    expect(ds.seen).toEqual([]);
    const published = await uploadToDatastore(options({ insecure: true }), files());
    expect(published.map((p) => p.sha256)).toEqual([smallSha, bigSha]);
    expect(ds.connections).toBe(1);
  });
});

describe('vmware datastore settings', () => {
  it('refuses bad URLs and missing credentials before any work', () => {
    const reporter = new RecordingReporter();
    const signal = new AbortController().signal;
    const url = 'https://esxi.test/folder/aim?dcPath=ha-datacenter&dsName=datastore1';
    expect(() => datastoreSettings({ 'datastore-url': url }, {}, { reporter, signal })).toThrow(/AIM_VMWARE_USER and AIM_VMWARE_PASSWORD not set/);
    expect(() => datastoreSettings({ 'datastore-url': url }, { AIM_VMWARE_USER: 'u' }, { reporter, signal })).toThrow(/AIM_VMWARE_PASSWORD not set/);
    expect(datastoreSettings({ 'datastore-url': url, insecure: true }, { AIM_VMWARE_USER: 'u', AIM_VMWARE_PASSWORD: 'p' }, { reporter, signal })).toMatchObject({
      target: { origin: 'https://esxi.test', folder: 'aim', dcPath: 'ha-datacenter', dsName: 'datastore1' },
      insecure: true,
      overwrite: false,
    });
    expect(datastoreSettings({}, {}, { reporter, signal })).toBeUndefined();
    expect(() => parseDatastoreUrl('https://esxi.test/ui/aim?dcPath=a&dsName=b')).toThrow(/must start with \/folder/);
    expect(() => parseDatastoreUrl('https://esxi.test/folder/aim')).toThrow(/dcPath and dsName/);
    expect(() => parseDatastoreUrl('https://root:pw@esxi.test/folder/aim?dcPath=a&dsName=b')).toThrow(/credentials/);
    expect(() => parseDatastoreUrl('ftp://esxi.test/folder/aim?dcPath=a&dsName=b')).toThrow(/https/);
  });
});
