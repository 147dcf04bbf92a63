import { execa } from 'execa';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { effectiveState, newLeaseOwner, type NewPublication } from '../../src/core/repository/catalog-publications.js';
import { SqliteCatalog } from '../../src/core/repository/sqlite-catalog.js';
import { idempotencyKey, openJournal } from '../../src/core/ship/journal.js';
import { tempDir } from '../helpers/tmp.js';

let tmp: Awaited<ReturnType<typeof tempDir>>;
let catalog: SqliteCatalog;
let file: string;

beforeAll(async () => {
  tmp = await tempDir('aim-journal-');
  file = join(tmp.dir, 'catalog.db');
  catalog = new SqliteCatalog(file);
  catalog.migrate();
});
afterAll(async () => {
  await catalog.close();
  await tmp.cleanup();
});

let n = 0;
const fresh = (key = `key-${++n}`): NewPublication => ({ key, provider: 'fake', source: 'built-in', imageId: 'a'.repeat(64), imageRef: 'slim/x:1', target: 'somewhere', options: { region: 'eu' } });

describe('idempotency key', () => {
  it('is a sha256 of image id, provider and target, each of which changes it', () => {
    const k = idempotencyKey('a'.repeat(64), 'vmware', 'datastore x');
    expect(k).toMatch(/^[0-9a-f]{64}$/);
    expect(idempotencyKey('a'.repeat(64), 'vmware', 'datastore x')).toBe(k);
    expect(new Set([k, idempotencyKey('b'.repeat(64), 'vmware', 'datastore x'), idempotencyKey('a'.repeat(64), 'aws', 'datastore x'), idempotencyKey('a'.repeat(64), 'vmware', 'datastore y')]).size).toBe(4);
    // fields cannot slide into each other
    expect(idempotencyKey('a', 'bc', 'd')).not.toBe(idempotencyKey('ab', 'c', 'd'));
  });
});

describe('publication lease', () => {
  it('gives one publication per key: a second live run is busy until the first releases', async () => {
    const store = catalog.publications;
    const first = newLeaseOwner();
    const second = newLeaseOwner();
    const a = await store.claim(fresh('same'), first);
    expect(a.busy).toBeUndefined();
    expect(a.busy === undefined && a.created).toBe(true);
    const b = await store.claim(fresh('same'), second);
    expect(b.busy?.id).toBe(a.busy === undefined ? a.publication.id : '');
    await store.release(a.busy === undefined ? a.publication.id : '', first, { state: 'published' });
    const c = await store.claim(fresh('same'), second);
    expect(c.busy).toBeUndefined();
    if (c.busy === undefined) {
      expect(c.created).toBe(false);
      expect(c.publication.state).toBe('published');
      expect(c.publication.id).toBe(a.busy === undefined ? a.publication.id : '');
    }
    expect((await store.list()).filter((p) => p.key === 'same')).toHaveLength(1);
  });

  it('takes over the lease of a run whose process is gone, and shows its publication as interrupted', async () => {
    const store = catalog.publications;
    const gone = await execa(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
    const dead = { ...newLeaseOwner(), pid: Number(gone.stdout) };
    const claimed = await store.claim(fresh('killed'), dead);
    expect(claimed.busy).toBeUndefined();
    const p = (await store.live('killed'))!;
    expect(p.state).toBe('applying');
    expect(effectiveState(p)).toBe('interrupted');
    const next = await store.claim(fresh('killed'), newLeaseOwner());
    expect(next.busy).toBeUndefined();
    expect(next.busy === undefined && next.created).toBe(false);
  });

  it('lets a removed publication’s key start a new publication', async () => {
    const store = catalog.publications;
    const owner = newLeaseOwner();
    const a = await store.claim(fresh('again'), owner);
    const id = a.busy === undefined ? a.publication.id : '';
    await store.release(id, owner, { state: 'removed' });
    const b = await store.claim(fresh('again'), owner);
    expect(b.busy === undefined && b.created).toBe(true);
    expect(b.busy === undefined && b.publication.id).not.toBe(id);
    expect((await store.list()).filter((p) => p.key === 'again').map((p) => p.state).sort()).toEqual(['applying', 'removed']);
  });
});

describe('journal', () => {
  it('records pending before creation, then created, progress and removed, durably (another handle sees each write at once)', async () => {
    const store = catalog.publications;
    const claim = await store.claim(fresh(), newLeaseOwner());
    const id = claim.busy === undefined ? claim.publication.id : '';
    const journal = openJournal(store, id, []);
    const other = new SqliteCatalog(file);
    try {
      const snap = await journal.begin({ kind: 'snapshot', id: 'token-1', location: 'eu-west-1', data: { blocks: 10 } });
      expect(snap).toMatchObject({ seq: 1, kind: 'snapshot', id: 'token-1', location: 'eu-west-1', state: 'pending', data: { blocks: 10 } });
      expect((await other.publications.resources(id)).map((r) => [r.id, r.state])).toEqual([['token-1', 'pending']]);

      const progressed = await journal.update(snap, { done: 4 });
      expect(progressed).toMatchObject({ state: 'pending', data: { blocks: 10, done: 4 } });
      const created = await journal.created(progressed, { id: 'snap-0123', data: { done: 10 } });
      expect(created).toMatchObject({ seq: 1, id: 'snap-0123', state: 'created', data: { blocks: 10, done: 10 } });
      expect(journal.find('snapshot', 'snap-0123')?.state).toBe('created');
      expect(journal.find('snapshot', 'token-1')).toBeUndefined();

      // begin on what exists: back to pending (being created again), same row
      const again = await journal.begin({ kind: 'snapshot', id: 'snap-0123', location: 'eu-west-1' });
      expect(again).toMatchObject({ seq: 1, state: 'pending' });
      await journal.created(again);

      const ami = await journal.created(await journal.begin({ kind: 'ami', id: 'ami-1', location: 'eu-west-1' }));
      expect(ami.seq).toBe(2);
      await journal.removed(ami);
      expect(journal.find('ami', 'ami-1')).toBeUndefined();
      expect((await other.publications.resources(id)).map((r) => `${r.seq} ${r.kind} ${r.id} ${r.state}`)).toEqual(['1 snapshot snap-0123 created', '2 ami ami-1 removed']);
      // a new resource of a removed one's id is a new row, after it
      const ami2 = await journal.begin({ kind: 'ami', id: 'ami-1' });
      expect(ami2).toMatchObject({ seq: 3, state: 'pending' });
      expect(journal.resources().map((r) => r.seq)).toEqual([1, 2, 3]);
    } finally {
      await other.close();
    }
  });
});
