/**
 * aim impact through the CLI on a fleet too large for one pipe buffer: the report of 1,000 images
 * (every image, with --all in the table too) is more than 64 KiB, and the command exits 13 (an
 * image uses a changed file). All of it must reach the reading end of a pipe, as one JSON
 * document or as the whole table.
 */
import { execa } from 'execa';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ImpactReport } from '../../src/core/lifecycle/impact.js';
import { initRepository, openRepository } from '../../src/core/repository/repository.js';
import type { SqliteCatalog } from '../../src/core/repository/sqlite-catalog.js';
import { runJs } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

const IMAGES = 1000;
let tmp: Awaited<ReturnType<typeof tempDir>>;
let repo: string;

beforeAll(async () => {
  tmp = await tempDir('aim-impact-cli-');
  repo = join(tmp.dir, 'repo');
  await initRepository(repo);
  const r = await openRepository(repo);
  const catalog = r.catalog as SqliteCatalog;
  const files: [string, string][] = Array.from({ length: 30 }, (_, i) => [`/usr/lib/x86_64-linux-gnu/ossl-modules/m${String(i).padStart(2, '0')}.so`, 'a'.repeat(64)]);
  files.push(['/usr/lib/x86_64-linux-gnu/libssl.so.3', 'b'.repeat(64)]);
  const state = { package: 'libssl3', arch: 'amd64', version: '3.0.11-1~deb12u2', source: 'openssl', sourceVersion: '3.0.11-1~deb12u2', files };
  await catalog.bulk(async () => {
    for (let i = 0; i < IMAGES; i++) {
      const id = i.toString(16).padStart(64, '0');
      const at = new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString();
      await catalog.addImage({ id, createdAt: at, source: 'test', sourceKind: 'test', entryCount: 0, fileCount: 0, totalSize: 0 }, [], { packages: [{ name: 'libssl3', arch: 'amd64', version: state.version, source: 'openssl', sourceVersion: state.version, manager: 'dpkg' }], owners: new Map(), elf: new Map(), licenses: [] }, [`gold/app-${i}:1`]);
      await catalog.impact.putImage(id, { kind: 'gold', release: 'debian 12', states: [state] });
      await catalog.putProfile({ name: `app-${i}`, imageId: id, createdAt: at, updatedAt: at, runs: [], paths: [] });
      await catalog.impact.putProfile(`app-${i}`, id, at, new Map([['libssl3', ['/usr/lib/x86_64-linux-gnu/libssl.so.3']]]));
    }
  });
  await r.close();
}, 120_000);
afterAll(async () => tmp?.cleanup());

describe('aim impact: a large report through a pipe', () => {
  it('--json: one whole document, exit 13 with the report as result', async () => {
    const r = await execa(process.execPath, [runJs, 'impact', 'src:openssl=3.0.15-1~deb12u1', '--repo', repo, '--json'], { reject: false });
    expect(r.exitCode).toBe(13);
    expect(r.stdout.length).toBeGreaterThan(64 * 1024);
    const doc = JSON.parse(r.stdout) as { error: { code: string }; result: ImpactReport };
    expect(doc.error.code).toBe('E_IMPACT_IN_USE');
    expect(doc.result.summary).toMatchObject({ images: IMAGES, inUse: IMAGES, present: IMAGES });
    // one group: every image holds the same package state and its profile traced the same file
    expect(doc.result.groups).toHaveLength(1);
    expect(doc.result.groups[0]!.images).toHaveLength(IMAGES);
    expect(doc.result.groups[0]!.images.at(-1)).toEqual({ id: (IMAGES - 1).toString(16).padStart(64, '0'), tags: [`gold/app-${IMAGES - 1}:1`] });
    expect(doc.result.groups[0]!.packages).toEqual([expect.objectContaining({ binary: 'libssl3', changed: 31, traced: ['/usr/lib/x86_64-linux-gnu/libssl.so.3'] })]);
    expect(JSON.stringify(doc.result.changes[0]!.files)).toContain('m29.so');
  });

  it('the table: every line, to the summary', async () => {
    const r = await execa(process.execPath, [runJs, 'impact', 'src:openssl=3.0.15-1~deb12u1', '--repo', repo, '--all'], { reject: false });
    expect(r.exitCode).toBe(13);
    expect(r.stdout.trimEnd().split('\n').at(-1)).toBe(`${IMAGES} images: 0 kept and used, 0 kept but not used, 0 not in the slim image, ${IMAGES} present (gold), 0 not affected; ${IMAGES} images use a changed file`);
    expect(r.stdout.match(/gold\/app-\d+:1/g)).toHaveLength(IMAGES);
  });
});
