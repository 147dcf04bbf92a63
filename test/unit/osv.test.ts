/** OSV advisories: the schema's Debian records, OSV's range evaluation, and bad input. */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { evaluateAdvisory, parseOsv, readAdvisoryDir, readOsvFile, type OsvEvent } from '../../src/core/lifecycle/osv.js';
import { projectRoot } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

const FIXTURES = join(projectRoot, 'test', 'fixtures', 'osv');

let tmp: Awaited<ReturnType<typeof tempDir>>;
beforeAll(async () => {
  tmp = await tempDir('aim-osv-');
});
afterAll(async () => tmp?.cleanup());

describe('OSV records', () => {
  it('reads the Debian entries of a record: source package, release, ranges, versions', async () => {
    const [a] = await readOsvFile(join(FIXTURES, 'AIM-TEST-2026-0001.json'));
    expect(a).toMatchObject({ id: 'AIM-TEST-2026-0001', aliases: ['CVE-2026-99001'], modified: '2026-03-02T10:00:00Z', published: '2026-03-01T09:00:00Z' });
    expect(a!.packages).toEqual([
      { name: 'openssl', release: '12', ranges: [[{ introduced: '0' }, { fixed: '3.0.99-1~deb12u1' }]], versions: [] },
      { name: 'openssl', release: '11', ranges: [[{ introduced: '0' }, { fixed: '1.1.1w-0+deb11u99' }]], versions: [] },
    ]);
    const [z] = await readOsvFile(join(FIXTURES, 'AIM-TEST-2026-0004.json'));
    expect(z!.packages.map((p) => p.name)).toEqual(['zlib']);
    expect(z!.otherEcosystems).toEqual(['npm']);
  });

  it('evaluates ranges as OSV does: introduced, fixed, last_affected, limit, listed versions', () => {
    const range = (...events: OsvEvent[]) => ({ ranges: [events], versions: [] });
    const r = range({ introduced: '1.0-1' }, { fixed: '1.0-3' }, { introduced: '2.0-1' }, { fixed: '2.0-1+deb12u2' });
    expect(evaluateAdvisory(r, '0.9-1')).toEqual({ affected: false });
    expect(evaluateAdvisory(r, '1.0-1')).toEqual({ affected: true, fixed: '1.0-3' });
    expect(evaluateAdvisory(r, '1.0-2+b1')).toEqual({ affected: true, fixed: '1.0-3' });
    expect(evaluateAdvisory(r, '1.0-3')).toEqual({ affected: false });
    expect(evaluateAdvisory(r, '1.5-1')).toEqual({ affected: false });
    expect(evaluateAdvisory(r, '2.0-1+deb12u1')).toEqual({ affected: true, fixed: '2.0-1+deb12u2' });
    expect(evaluateAdvisory(r, '2.0-1+deb12u2')).toEqual({ affected: false });
    // events in any order: evaluation sorts them
    expect(evaluateAdvisory(range({ fixed: '3.0.15-1~deb12u1' }, { introduced: '0' }), '3.0.14-1~deb12u2')).toEqual({ affected: true, fixed: '3.0.15-1~deb12u1' });
    // "0" is before everything; no fix at all
    expect(evaluateAdvisory(range({ introduced: '0' }), '1:0.1')).toEqual({ affected: true });
    const last = range({ introduced: '0' }, { last_affected: '2.0-1' });
    expect(evaluateAdvisory(last, '2.0-1')).toEqual({ affected: true });
    expect(evaluateAdvisory(last, '2.0-1+b1')).toEqual({ affected: false });
    const limit = range({ introduced: '0' }, { limit: '2.0-1' });
    expect(evaluateAdvisory(limit, '2.0-1')).toEqual({ affected: false });
    expect(evaluateAdvisory(limit, '2.0~rc1-1')).toEqual({ affected: true });
    // a listed version is affected whatever the ranges say
    expect(evaluateAdvisory({ ranges: [], versions: ['1:2.3-4'] }, '1:2.3-4')).toEqual({ affected: true });
    expect(evaluateAdvisory({ ranges: [], versions: ['1:2.3-4'] }, '2.3-4')).toEqual({ affected: false });
    // the lowest fix above the version, across ranges
    expect(evaluateAdvisory({ ranges: [[{ introduced: '0' }, { fixed: '5-1' }], [{ introduced: '1-1' }, { fixed: '4-1' }]], versions: [] }, '2-1')).toEqual({ affected: true, fixed: '4-1' });
  });

  it('reads a folder, keeping advisories modified or published since a date, leaving withdrawn ones out', async () => {
    const all = await readAdvisoryDir(FIXTURES);
    expect(all.advisories.map((a) => a.id).sort()).toEqual(['AIM-TEST-2019-0005', 'AIM-TEST-2026-0001', 'AIM-TEST-2026-0002', 'AIM-TEST-2026-0003', 'AIM-TEST-2026-0004']);
    expect(all.withdrawn).toBe(1);
    const recent = await readAdvisoryDir(FIXTURES, new Date('2026-03-05T00:00:00Z'));
    expect(recent.advisories.map((a) => a.id).sort()).toEqual(['AIM-TEST-2026-0002', 'AIM-TEST-2026-0003', 'AIM-TEST-2026-0004']);
    expect(recent.older).toBe(2);
  });
});

describe('bad OSV input: a clear error', () => {
  const parse = (text: string) => () => parseOsv(text, 'x.json');
  it.each([
    ['not JSON', '{"id": "X", "modified": ', /not JSON/],
    ['a JSON string', '"DSA-1"', /\(top\): /],
    ['no id', '{"modified": "2026-01-01T00:00:00Z"}', /id: /],
    ['a bad time', '{"id": "X", "modified": "yesterday"}', /modified: an RFC 3339 time/],
    ['an event with two keys', '{"id": "X", "modified": "2026-01-01T00:00:00Z", "affected": [{"package": {"ecosystem": "Debian:12", "name": "a"}, "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0", "fixed": "1"}]}]}]}', /affected\.0\.ranges\.0\.events\.0/],
    ['an unknown range type', '{"id": "X", "modified": "2026-01-01T00:00:00Z", "affected": [{"package": {"ecosystem": "Debian:12", "name": "a"}, "ranges": [{"type": "DATE", "events": [{"introduced": "0"}]}]}]}', /affected\.0\.ranges\.0\.type/],
    ['a version dpkg refuses', '{"id": "X", "modified": "2026-01-01T00:00:00Z", "affected": [{"package": {"ecosystem": "Debian:12", "name": "a"}, "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.0-"}]}]}]}', /events\.1.*revision/],
    ['an empty array', '[]', /holds no record/],
  ])('%s', (_, text, message) => {
    expect(parse(text)).toThrow(message);
    try {
      parse(text)();
    } catch (e) {
      expect((e as { code: string }).code).toMatch(/^E_BAD_(OSV|VERSION)$/);
    }
  });

  it('refuses a file too large to be an advisory without reading it', async () => {
    const big = join(tmp.dir, 'big.json');
    await writeFile(big, Buffer.alloc(17 << 20, 0x20));
    await expect(readOsvFile(big)).rejects.toMatchObject({ code: 'E_BAD_OSV', message: expect.stringMatching(/more than an advisory/) });
  });

  it('deeply nested JSON is a clear error, not a crash', () => {
    const deep = '{"id": "X", "modified": "2026-01-01T00:00:00Z", "details": ' + '['.repeat(200_000) + ']'.repeat(200_000) + '}';
    expect(parse(deep)).toThrow(/not a valid OSV advisory/);
  });
});
