/**
 * The readiness rules shared by profile run, verify and boot: retry with backoff against a
 * deadline, gates, expectations, rounds. A fake clock advances only when the code sleeps or a
 * fake probe says its try took time, so nothing here waits or depends on the machine's speed.
 */
import { describe, expect, it } from 'vitest';
import { unmetExec, unmetHttp, describeExecExpectation, describeHttpExpectation } from '../../src/core/probe/expectation.js';
import { LineWatch, parseReadyLog } from '../../src/core/probe/line-watch.js';
import { backoffDelay, DEFAULT_BACKOFF, probeWhenReady, ProbeFailedError, retryUntilMet, type Clock, type Gate, type ProbePlan } from '../../src/core/probe/readiness.js';
import { ConfigError } from '../../src/lib/errors.js';

class FakeClock implements Clock {
  t = 0;
  readonly sleeps: number[] = [];
  now(): number {
    return this.t;
  }
  async sleep(ms: number): Promise<void> {
    this.sleeps.push(ms);
    this.t += ms;
  }
}

/** A fake probe whose answers are scripted per try; each try takes `tookMs` of fake time. */
function scripted<T>(clock: FakeClock, answers: T[], tookMs = 0) {
  const calls: number[] = [];
  return {
    calls,
    attempt: async (n: number): Promise<T> => {
      calls.push(clock.now());
      clock.t += tookMs;
      return answers[Math.min(n, answers.length) - 1]!;
    },
  };
}

const judgeOk = (v: string) => (v === 'ok' ? undefined : `got ${v}`);

describe('backoff', () => {
  it('starts short, doubles, and stays at its ceiling', () => {
    expect([1, 2, 3, 4, 5, 6, 40].map((n) => backoffDelay(DEFAULT_BACKOFF, n))).toEqual([100, 200, 400, 800, 1000, 1000, 1000]);
  });
});

describe('retryUntilMet', () => {
  it('tries again after each miss, with the backoff between tries, until the expectation is met', async () => {
    const clock = new FakeClock();
    const p = scripted(clock, ['refused', 'refused', '503', 'ok']);
    const r = await retryUntilMet(p.attempt, judgeOk, { deadline: 60_000, clock });
    expect(r).toMatchObject({ met: true, last: 'ok', tries: 4, at: 700, ms: 700 });
    expect(clock.sleeps).toEqual([100, 200, 400]);
  });

  it('gives up at the deadline with the last answer and why it missed; the last pause is cut to the deadline', async () => {
    const clock = new FakeClock();
    const p = scripted(clock, ['refused', 'refused', 'refused', 'refused', 'refused', 'HTTP 404']);
    const r = await retryUntilMet(p.attempt, judgeOk, { deadline: 2_500, clock });
    expect(r).toMatchObject({ met: false, last: 'HTTP 404', unmet: 'got HTTP 404', tries: 6 });
    expect(clock.sleeps).toEqual([100, 200, 400, 800, 1000]);
    expect(p.calls).toEqual([0, 100, 300, 700, 1500, 2500]);
  });

  it('always makes a first try, even past the deadline, and no second one', async () => {
    const clock = new FakeClock();
    clock.t = 10_000;
    const p = scripted(clock, ['slow'], 5_000);
    const r = await retryUntilMet(p.attempt, judgeOk, { deadline: 1_000, clock });
    expect(r).toMatchObject({ met: false, tries: 1, ms: 5_000 });
    expect(clock.sleeps).toEqual([]);
  });

  it('stops at once when told to abandon (the workload ended), with that error', async () => {
    const clock = new FakeClock();
    const p = scripted(clock, ['refused']);
    let checks = 0;
    const abandon = () => {
      if (++checks === 3) throw new Error('workload exited');
    };
    await expect(retryUntilMet(p.attempt, judgeOk, { deadline: 60_000, clock, abandon })).rejects.toThrow('workload exited');
    expect(p.calls).toHaveLength(2);
  });

  it('honours an abort signal', async () => {
    const clock = new FakeClock();
    const ac = new AbortController();
    ac.abort(new Error('Ctrl-C'));
    await expect(retryUntilMet(scripted(clock, ['ok']).attempt, judgeOk, { deadline: 1, clock, signal: ac.signal })).rejects.toThrow('Ctrl-C');
  });
});

interface Answer {
  status: number;
  unmet?: string;
}

function plan(clock: FakeClock, script: Record<string, number[]>, extra: Partial<ProbePlan<string, Answer>> = {}): ProbePlan<string, Answer> & { tries: Record<string, number> } {
  const tries: Record<string, number> = {};
  return {
    tries,
    probes: Object.keys(script),
    async attempt(probe) {
      const n = (tries[probe] = (tries[probe] ?? 0) + 1);
      const list = script[probe]!;
      clock.t += 10;
      return { status: list[Math.min(n, list.length) - 1]! };
    },
    judge: (_, r) => unmetHttp({}, { status: r.status, body: '' }),
    label: (p) => p,
    expectation: () => describeHttpExpectation({}),
    start: 0,
    deadline: 5_000,
    outputTail: () => 'listening on :80\n',
    tailLabel: 'workload',
    clock,
    ...extra,
  };
}

describe('probeWhenReady', () => {
  it('awaits the gates in order, then each probe until it meets its expectation; records tries and time to ready', async () => {
    const clock = new FakeClock();
    const seen: string[] = [];
    let portChecks = 0;
    const gates: Gate[] = [
      { name: 'log', check: () => (seen.push('log'), clock.now() >= 300), notReady: () => new Error('no log') },
      { name: 'port', check: () => (seen.push('port'), ++portChecks >= 2), notReady: () => new Error('no port') },
    ];
    const p = plan(clock, { '/': [0, 503, 200], '/api': [200] }, { gates });
    const run = await probeWhenReady(p);
    expect(seen.indexOf('port')).toBeGreaterThan(seen.lastIndexOf('log'));
    expect(run.gates).toEqual([
      { name: 'log', readyMs: 300, tries: 3 },
      { name: 'port', readyMs: 400, tries: 2 },
    ]);
    expect(run.rounds).toHaveLength(1);
    const [root, api] = run.rounds[0]!;
    expect(root).toMatchObject({ status: 200, met: true, tries: 3 });
    expect(root!.unmet).toBeUndefined();
    expect(api).toMatchObject({ status: 200, met: true, tries: 1 });
    expect(run.tries).toBe(4);
    expect(run.readyMs).toBe(api!.readyMs);
    expect(root!.readyMs).toBeLessThan(api!.readyMs);
  });

  it('a gate that never holds fails with the gate’s own error, before any probe', async () => {
    const clock = new FakeClock();
    const p = plan(clock, { '/': [200] }, { gates: [{ name: 'port', check: () => false, notReady: (ms) => new Error(`port not listening after ${ms} ms`) }] });
    await expect(probeWhenReady(p)).rejects.toThrow('port not listening after 5000 ms');
    expect(p.tries['/']).toBeUndefined();
  });

  it('a probe that never meets its expectation fails with its last answer, its tries and the workload’s output', async () => {
    const clock = new FakeClock();
    const p = plan(clock, { '/': [200], '/x': [0, 404] }, { where: 'in the gold image' });
    const e = await probeWhenReady(p).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ProbeFailedError);
    const f = e as ProbeFailedError;
    expect(f.code).toBe('E_PROBE_FAILED');
    expect(f.exitCode).toBe(11);
    expect(f.message).toMatch(/^probe \/x did not meet its expectation \(status 2xx\) in the gold image in \d+ tries over 5\.\d s; last: HTTP 404, expected 2xx/);
    expect(f.message).toContain('--- last output of the workload ---\nlistening on :80');
    const json = f.toJSON();
    expect(json).toMatchObject({ code: 'E_PROBE_FAILED', probe: '/x', expectation: 'status 2xx', last: { status: 404 }, unmet: 'HTTP 404, expected 2xx', outputTail: 'listening on :80' });
    expect(json.tries).toBe(p.tries['/x']);
    expect(json.tries as number).toBeGreaterThan(5);
  });

  it('records an unmet probe instead when asked (verify’s slim run), and goes on to the next', async () => {
    const clock = new FakeClock();
    const run = await probeWhenReady(plan(clock, { '/x': [500], '/': [200] }, { onUnmet: 'record' }));
    const [x, root] = run.rounds[0]!;
    expect(x).toMatchObject({ status: 500, met: false, unmet: 'HTTP 500, expected 2xx' });
    expect(x!.tries).toBeGreaterThan(1);
    expect(root).toMatchObject({ status: 200, met: true, tries: 1 });
  });

  it('later rounds try each probe exactly once, whatever it answers', async () => {
    const clock = new FakeClock();
    const p = plan(clock, { '/': [503, 200, 500, 200] }, { repeat: 3 });
    const run = await probeWhenReady(p);
    expect(run.rounds.map((r) => r.map((x) => [x.status, x.met, x.tries]))).toEqual([[[200, true, 2]], [[500, false, 1]], [[200, true, 1]]]);
    expect(p.tries['/']).toBe(4);
    expect(run.tries).toBe(2);
  });
});

describe('expectations', () => {
  it('HTTP: any 2xx by default, else the given status; bodyContains; no answer never meets', () => {
    expect(unmetHttp({}, { status: 204, body: '' })).toBeUndefined();
    expect(unmetHttp({}, { status: 301, body: '' })).toBe('HTTP 301, expected 2xx');
    expect(unmetHttp({ status: 404 }, { status: 404, body: 'nope' })).toBeUndefined();
    expect(unmetHttp({ status: 404 }, { status: 200, body: '' })).toBe('HTTP 200, expected 404');
    expect(unmetHttp({ bodyContains: 'Welcome' }, { status: 200, body: '<h1>Welcome</h1>' })).toBeUndefined();
    expect(unmetHttp({ bodyContains: 'Welcome' }, { status: 200, body: 'It works' })).toBe('body does not contain "Welcome"');
    expect(unmetHttp({ status: 404 }, { error: 'ECONNREFUSED' })).toBe('ECONNREFUSED');
    expect(describeHttpExpectation({ status: 404, bodyContains: 'x' })).toBe('status 404, body contains "x"');
  });

  it('exec: exit 0 by default, else the given code; outputContains', () => {
    expect(unmetExec({}, { exitCode: 0, output: '' })).toBeUndefined();
    expect(unmetExec({}, { exitCode: 2, output: 'Could not connect' })).toBe('exit 2, expected 0');
    expect(unmetExec({ exitCode: 1 }, { exitCode: 1, output: '' })).toBeUndefined();
    expect(unmetExec({ outputContains: 'PONG' }, { exitCode: 0, output: 'PONG\n' })).toBeUndefined();
    expect(unmetExec({ outputContains: 'PONG' }, { exitCode: 0, output: 'LOADING\n' })).toBe('output does not contain "PONG"');
    expect(unmetExec({}, { error: 'timed out after 10000 ms' })).toBe('timed out after 10000 ms');
    expect(describeExecExpectation({})).toBe('exit 0');
  });
});

describe('ready-log', () => {
  it('matches whole lines per stream, across chunks, and remembers the first match and when it came', () => {
    const clock = new FakeClock();
    const w = new LineWatch(/^Ready to accept/, clock);
    w.push('stdout', 'starting\nRea');
    w.push('stderr', 'warning: Ready to accept is a lie\n'); // not at the start of its line
    expect(w.check()).toBe(false);
    clock.t = 1234;
    w.push('stdout', 'dy to accept connections\r\nmore\n');
    expect(w.check()).toBe(true);
    expect(w.matched).toEqual({ line: 'Ready to accept connections', at: 1234 });
    w.push('stdout', 'Ready to accept again\n');
    expect(w.matched!.at).toBe(1234);
  });

  it('counts a line still being written when checked (a prompt without a newline)', () => {
    const w = new LineWatch(/listening/, new FakeClock());
    w.push('stdout', 'server listening on 8080');
    expect(w.check()).toBe(true);
  });

  it('a bad pattern is a configuration error naming where it came from', () => {
    expect(() => parseReadyLog('([', '--ready-log')).toThrow(ConfigError);
    expect(() => parseReadyLog('([', 'profile.ready-log')).toThrow(/profile\.ready-log "\(\[": not a regular expression/);
  });
});
