/**
 * Debian version comparison against dpkg itself: pairs made from the real package versions of
 * this machine's dpkg database and variations of them (epochs, "~" pre-releases, "+b" binNMUs,
 * revisions added, dropped and bumped, leading zeros), each compared by `dpkg --compare-versions`.
 */
import { execa } from 'execa';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { compareDebianVersions, parseDebianVersion } from '../../src/core/debian/version.js';

/** Deterministic pseudo-random numbers (mulberry32), so a failure repeats. */
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const realVersions = [...new Set([...readFileSync('/var/lib/dpkg/status', 'utf8').matchAll(/^Version: (\S+)$/gm)].map((m) => m[1]!))].sort();

/** Variations of a version, each a version dpkg accepts. */
function variations(v: string): string[] {
  const colon = v.indexOf(':');
  const epoch = colon === -1 ? '' : v.slice(0, colon + 1);
  const rest = v.slice(colon + 1);
  const hyphen = rest.lastIndexOf('-');
  const upstream = hyphen === -1 ? rest : rest.slice(0, hyphen);
  const revision = hyphen === -1 ? undefined : rest.slice(hyphen + 1);
  const bump = (s: string, d: number) => s.replace(/(\d+)(?!.*\d)/, (n) => String(Math.max(0, Number(n) + d)));
  const out = [
    `${v}~rc1`,
    `${v}+b1`,
    `${v}+b10`,
    `${v}.1`,
    `${v}a`,
    `${v}~`,
    bump(v, 1),
    bump(v, -1),
    colon === -1 ? `1:${v}` : rest,
    colon === -1 ? `0:${v}` : `${Number(v.slice(0, colon)) + 1}:${rest}`,
    revision === undefined ? `${v}-0` : `${epoch}${upstream}`,
    revision === undefined ? `${v}-1` : `${epoch}${upstream}-${bump(revision, 1)}`,
    revision === undefined ? `${v}~deb12u1` : `${epoch}${upstream}-${revision}~deb12u1`,
    `${epoch}${upstream}~beta${revision === undefined ? '' : `-${revision}`}`,
    `${epoch}${upstream.replace(/\./, '.0')}${revision === undefined ? '' : `-${revision}`}`,
    `${epoch}0${upstream}${revision === undefined ? '' : `-${revision}`}`,
  ];
  return out.filter((x) => {
    try {
      parseDebianVersion(x);
      return true;
    } catch {
      return false;
    }
  });
}

/**
 * dpkg's answer for each pair: -1, 0 or 1. Four shells read a quarter of the pairs each; dpkg
 * runs once or twice per pair (a few ms each, tens on a loaded machine).
 */
async function dpkgCompare(pairs: [string, string][]): Promise<number[]> {
  const script = 'while read -r a b; do if dpkg --compare-versions "$a" lt "$b"; then echo -1; elif dpkg --compare-versions "$a" eq "$b"; then echo 0; else echo 1; fi; done';
  const quarter = Math.ceil(pairs.length / 4);
  const parts = await Promise.all(
    [0, 1, 2, 3].map(async (k) => {
      const part = pairs.slice(k * quarter, (k + 1) * quarter);
      if (part.length === 0) return [];
      const r = await execa('sh', ['-c', script], { input: part.map(([a, b]) => `${a} ${b}`).join('\n') + '\n', maxBuffer: 1 << 26 });
      return r.stdout.trim().split('\n').map(Number);
    }),
  );
  return parts.flat();
}

describe('Debian versions compare as dpkg compares them', () => {
  it('agrees with the examples of deb-version(7) and dpkg’s own tests', () => {
    const cases: [string, string, number][] = [
      ['1.0~rc1', '1.0', -1],
      ['1.0', '1.0+b1', -1],
      ['1.0~rc1~', '1.0~rc1', -1],
      ['1:1.0', '2.0', 1],
      ['0:1.0', '1.0', 0],
      ['1.0-0', '1.0', 0],
      ['1.00', '1.0', 0],
      ['1.0a', '1.0', 1],
      ['1.0a', '1.0+', -1], // letters sort before other characters
      ['1.0~', '1.0', -1],
      ['2.36-9+deb12u10', '2.36-9+deb12u9', 1],
      ['3.0.15-1~deb12u1', '3.0.15-1', -1],
      ['1.2.3-1', '1.2.3-1.1', -1],
      ['7.88.1-10+deb12u8', '7.88.1-10+deb12u12', -1],
      ['1:2.39.2-1.1', '2.40-1', 1],
    ];
    for (const [a, b, want] of cases) {
      expect(compareDebianVersions(a, b), `${a} vs ${b}`).toBe(want);
      expect(compareDebianVersions(b, a), `${b} vs ${a}`).toBe(want === 0 ? 0 : -want);
    }
  });

  it(`agrees with dpkg --compare-versions on pairs made from this machine's ${realVersions.length} package versions`, async () => {
    expect(realVersions.length).toBeGreaterThan(50);
    const random = rng(13);
    const pick = <T>(xs: T[]) => xs[Math.floor(random() * xs.length)]!;
    const pairs: [string, string][] = [];
    // each real version against two of its variations, versions of different packages, and variations of each other
    for (const v of realVersions) {
      const vs = variations(v);
      for (let k = 0; k < 2; k++) {
        const w = pick(vs);
        pairs.push(random() < 0.5 ? [v, w] : [w, v]);
      }
    }
    for (let i = 0; i < 150; i++) pairs.push([pick(realVersions), pick(realVersions)]);
    for (let i = 0; i < 150; i++) {
      const v = pick(realVersions);
      const vs = variations(v);
      pairs.push([pick(vs), pick(vs)]);
    }
    const want = await dpkgCompare(pairs);
    expect(want).toHaveLength(pairs.length);
    const wrong = pairs.map(([a, b], i) => ({ a, b, dpkg: want[i], aim: compareDebianVersions(a, b) })).filter((x) => x.dpkg !== x.aim);
    expect(wrong, `${wrong.length} of ${pairs.length} pairs differ`).toEqual([]);
    // the pairs really cover all three outcomes
    for (const r of [-1, 0, 1]) expect(want.filter((x) => x === r).length, `outcome ${r}`).toBeGreaterThan(20);
  }, 600_000);

  it('refuses what is no Debian version, saying why', () => {
    for (const [bad, why] of [
      ['', /empty/],
      ['1.0 2', /blanks/],
      [':1.0', /epoch .*empty/],
      ['a:1.0', /epoch is not a number/],
      ['99999999999:1.0', /epoch is too big/],
      ['1.0-', /revision .*empty/],
      ['abc', /does not start with a digit/],
      ['1.0_1', /character/],
      ['1.0-1_2', /revision has a character/],
    ] as const) {
      expect(() => parseDebianVersion(bad), bad).toThrow(why);
    }
    expect(parseDebianVersion('1:2.39.2-1.1')).toEqual({ epoch: 1, upstream: '2.39.2', revision: '1.1' });
    expect(parseDebianVersion('2.0-beta-3')).toEqual({ epoch: 0, upstream: '2.0-beta', revision: '3' });
  });
});
