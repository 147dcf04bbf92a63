/** aim verify's verdict per probe, from gold's and slim's rounds: same, different or flaky. */
import { describe, expect, it } from 'vitest';
import type { ProbeResult, ProbeSpec } from '../../src/core/profile/probes.js';
import { compareProbe, summarizeOutcomes, verifyFailure, type VerifyReport } from '../../src/core/slim/verify.js';

const spec: ProbeSpec = { kind: 'http', url: 'http://127.0.0.1/' };
const A = 'a'.repeat(64);
const B = 'b'.repeat(64);

const http = (status: number | undefined, sha256?: string, error?: string): ProbeResult => {
  const met = error === undefined && status !== undefined && status >= 200 && status < 300;
  return { kind: 'http', url: spec.url, status, sha256, error, ms: 1, met, ...(met ? {} : { unmet: error ?? `HTTP ${status}, expected 2xx` }), tries: 1, readyMs: 5 };
};

describe('compareProbe', () => {
  it('same: gold answers alike every time and slim exactly that every time', () => {
    const c = compareProbe(spec, [http(200, A), http(200, A), http(200, A)], [http(200, A), http(200, A), http(200, A)]);
    expect(c).toMatchObject({ verdict: 'same', same: true, probe: 'http://127.0.0.1/', expectation: 'status 2xx' });
    expect(c.why).toBe('gold and slim: HTTP 200 aaaaaaaaaaaa ×3');
    expect(c.gold).toHaveLength(3);
  });

  it('different: slim answers otherwise once, even with a status that meets the expectation', () => {
    const c = compareProbe(spec, [http(200, A), http(200, A), http(200, A)], [http(200, A), http(200, B), http(200, A)]);
    expect(c.verdict).toBe('different');
    expect(c.same).toBe(false);
    expect(c.why).toBe('gold: HTTP 200 aaaaaaaaaaaa ×3; slim: HTTP 200 aaaaaaaaaaaa ×2, HTTP 200 bbbbbbbbbbbb ×1');
  });

  it('different: slim never answers', () => {
    const c = compareProbe(spec, [http(200, A)], [http(undefined, undefined, 'ECONNREFUSED')]);
    expect(c.verdict).toBe('different');
    expect(c.slim).toEqual([{ status: undefined, sha256: undefined, error: 'ECONNREFUSED', met: false }]);
  });

  it('flaky: gold itself varies (a page with a counter); slim meeting the expectation proves nothing more', () => {
    const c = compareProbe(spec, [http(200, A), http(200, B), http(200, A)], [http(200, A), http(200, A), http(200, A)]);
    expect(c.verdict).toBe('flaky');
    expect(c.same).toBe(false);
    expect(c.why).toMatch(/^gold varies: HTTP 200 aaaaaaaaaaaa ×2, HTTP 200 bbbbbbbbbbbb ×1; slim: /);
  });

  it('flaky: gold misses its own expectation now and then, so slim missing it too is no evidence', () => {
    const c = compareProbe(spec, [http(200, A), http(503, B), http(200, A)], [http(503, B), http(200, A), http(200, A)]);
    expect(c.verdict).toBe('flaky');
  });

  it('different: gold varies but always meets its expectation, and slim misses it', () => {
    const c = compareProbe(spec, [http(200, A), http(200, B), http(200, A)], [http(200, A), http(500, B), http(200, A)]);
    expect(c.verdict).toBe('different');
    expect(c.why).toMatch(/slim missed it 1 of 3 times/);
  });

  it('summarises outcomes in order of first appearance', () => {
    expect(summarizeOutcomes([{ exitCode: 2, sha256: B, met: false }, { exitCode: 0, sha256: A, met: true }, { exitCode: 2, sha256: B, met: false }])).toBe('exit 2 bbbbbbbbbbbb ×2, exit 0 aaaaaaaaaaaa ×1');
  });
});

describe('verifyFailure', () => {
  const report = (verdicts: ('same' | 'different' | 'flaky')[]): VerifyReport => ({
    ok: false,
    slim: 's',
    gold: 'g',
    profile: 'p',
    repeat: 3,
    probes: verdicts.map((verdict, i) => ({ probe: `/${i}`, expectation: 'status 2xx', verdict, same: verdict === 'same', why: '', gold: [], slim: [] })),
    ready: {},
    missing: [],
  });

  it('passes only when every probe is the same', () => {
    expect(verifyFailure(report(['same', 'same']))).toBeUndefined();
  });

  it('a difference fails with E_VERIFY_FAILED and carries the report as its result, whatever else is flaky', () => {
    const r = report(['same', 'flaky', 'different']);
    const e = verifyFailure(r, true);
    expect(e).toMatchObject({ code: 'E_VERIFY_FAILED', exitCode: 11 });
    expect(e!.message).toMatch(/1 probe\(s\) differ between slim and gold: \/2/);
    expect(e!.result).toBe(r);
  });

  it('a flaky probe fails with E_VERIFY_FLAKY unless flaky probes are allowed', () => {
    const r = report(['same', 'flaky']);
    expect(verifyFailure(r)).toMatchObject({ code: 'E_VERIFY_FLAKY', exitCode: 11, result: r });
    expect(verifyFailure(r, true)).toBeUndefined();
  });
});
