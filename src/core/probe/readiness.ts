/**
 * Readiness, in one place for every stage that probes a running workload (aim profile run,
 * aim verify's gold and slim runs, aim boot --probe): a workload is ready when its readiness
 * gates hold (a line in its log, a listening port) and each probe has met its expectation once.
 * Gates and probes are tried again with a short backoff (100 ms doubling to 1 s) until they hold
 * or the readiness deadline passes; a probe always gets at least one try. Later rounds
 * (`repeat`) try each probe once more, so a caller can see whether its answer is stable.
 *
 * Time comes from an injectable clock so the logic is tested without waiting.
 */
import { AimError, ExitCode } from '../../lib/errors.js';

export interface Clock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

export interface Backoff {
  firstMs: number;
  maxMs: number;
}

export const DEFAULT_BACKOFF: Backoff = { firstMs: 100, maxMs: 1000 };

/** The pause after try `n` (1-based): firstMs, doubling, at most maxMs. */
export function backoffDelay(backoff: Backoff, n: number): number {
  return Math.min(backoff.maxMs, backoff.firstMs * 2 ** Math.min(n - 1, 30));
}

export interface RetryOptions {
  /** Clock time after which no further try starts; the first try always runs. */
  deadline: number;
  clock?: Clock;
  backoff?: Backoff;
  /** Runs before every try; throws to give up at once (the workload ended, the VM exited). */
  abandon?: () => Promise<void> | void;
  signal?: AbortSignal;
}

export interface Retried<T> {
  met: boolean;
  last: T;
  /** Why the last try did not meet the expectation. */
  unmet?: string;
  tries: number;
  /** Clock time when the last try ended. */
  at: number;
  /** From the first try's start until the last try ended. */
  ms: number;
}

/** Tries `attempt` until `judge` finds no fault with its value or the deadline passes. */
export async function retryUntilMet<T>(
  attempt: (n: number) => Promise<T>,
  judge: (value: T) => string | undefined,
  options: RetryOptions,
): Promise<Retried<T>> {
  const clock = options.clock ?? systemClock;
  const backoff = options.backoff ?? DEFAULT_BACKOFF;
  const start = clock.now();
  for (let n = 1; ; n++) {
    options.signal?.throwIfAborted();
    await options.abandon?.();
    const last = await attempt(n);
    const unmet = judge(last);
    const at = clock.now();
    if (unmet === undefined) return { met: true, last, tries: n, at, ms: at - start };
    if (at >= options.deadline) return { met: false, last, unmet, tries: n, at, ms: at - start };
    await clock.sleep(Math.min(backoffDelay(backoff, n), options.deadline - at));
  }
}

/** A readiness condition awaited before the first probe. */
export interface Gate {
  name: string;
  check(): Promise<boolean> | boolean;
  /** The error when it still does not hold at the deadline, `waitedMs` after the workload started. */
  notReady(waitedMs: number): Error;
}

/** How a probe's result was judged. */
export interface Verdict {
  met: boolean;
  /** Why it did not meet its expectation. */
  unmet?: string;
  /** Tries it took (more than 1 only in the first round). */
  tries: number;
  /** Milliseconds from the workload's start until this result: in the first round, its time to ready. */
  readyMs: number;
}

export type Judged<R> = R & Verdict;

export interface ProbePlan<S, R extends object> {
  probes: readonly S[];
  /** One try of a probe. Its failures to answer (refused, timed out) are results, not errors. */
  attempt(probe: S, index: number, n: number): Promise<R>;
  /** Why a result does not meet the probe's expectation, or undefined when it does. */
  judge(probe: S, result: R): string | undefined;
  label(probe: S): string;
  expectation(probe: S): string;
  gates?: readonly Gate[];
  /** Rounds of probes: the first waits for each to meet its expectation, each later one tries every probe once. Default 1. */
  repeat?: number;
  /** Clock time the workload started: times to ready count from here. */
  start: number;
  /** Clock time by which every gate must hold and every probe must have met its expectation once. */
  deadline: number;
  /** A probe that never meets its expectation throws ProbeFailedError (default), or is recorded as unmet. */
  onUnmet?: 'throw' | 'record';
  /** The last output of what is probed, for the error ("workload", "guest console"). */
  outputTail(): Promise<string> | string;
  tailLabel: string;
  /** Said in the error: where the probe ran ("in the gold image"). */
  where?: string;
  /** The error's hint, when the default (about the service and its expectation) does not fit. */
  hint?: string;
  abandon?: () => Promise<void> | void;
  clock?: Clock;
  backoff?: Backoff;
  signal?: AbortSignal;
}

export interface ProbeRun<R extends object> {
  /** rounds[r][i]: probe i in round r (rounds[0] is the readiness round). */
  rounds: Judged<R>[][];
  /** From the workload's start until every gate held and every probe had met its expectation once. */
  readyMs: number;
  /** Tries of the first round, all probes together. */
  tries: number;
  gates: { name: string; readyMs: number; tries: number }[];
}

/** Awaits the gates, then runs the probes round by round. */
export async function probeWhenReady<S, R extends object>(plan: ProbePlan<S, R>): Promise<ProbeRun<R>> {
  const clock = plan.clock ?? systemClock;
  const retry: RetryOptions = { deadline: plan.deadline, clock, backoff: plan.backoff, abandon: plan.abandon, signal: plan.signal };
  const gates: ProbeRun<R>['gates'] = [];
  for (const gate of plan.gates ?? []) {
    const r = await retryUntilMet(async () => await gate.check(), (ok) => (ok ? undefined : 'not yet'), retry);
    if (!r.met) throw gate.notReady(r.at - plan.start);
    gates.push({ name: gate.name, readyMs: r.at - plan.start, tries: r.tries });
  }
  const rounds: Judged<R>[][] = [];
  let tries = 0;
  const repeat = Math.max(1, plan.repeat ?? 1);
  for (let round = 0; round < repeat; round++) {
    const results: Judged<R>[] = [];
    for (const [i, probe] of plan.probes.entries()) {
      // later rounds: one try each, whatever the deadline
      const options = round === 0 ? retry : { ...retry, deadline: -Infinity };
      const r = await retryUntilMet((n) => plan.attempt(probe, i, n), (result) => plan.judge(probe, result), options);
      if (round === 0) tries += r.tries;
      if (!r.met && round === 0 && (plan.onUnmet ?? 'throw') === 'throw') {
        throw new ProbeFailedError({
          probe: plan.label(probe),
          expectation: plan.expectation(probe),
          last: r.last,
          unmet: r.unmet!,
          tries: r.tries,
          waitedMs: r.at - plan.start,
          outputTail: await plan.outputTail(),
          tailLabel: plan.tailLabel,
          where: plan.where,
          hint: plan.hint,
        });
      }
      results.push({ ...r.last, met: r.met, ...(r.unmet === undefined ? {} : { unmet: r.unmet }), tries: r.tries, readyMs: r.at - plan.start });
    }
    rounds.push(results);
  }
  const lastGate = gates.at(-1)?.readyMs ?? 0;
  return { rounds, readyMs: Math.max(lastGate, ...(rounds[0] ?? []).map((r) => r.readyMs)), tries, gates };
}

export interface ProbeFailure {
  probe: string;
  expectation: string;
  /** The last try's result (status or exit, body or output tail, or why there was no answer). */
  last: unknown;
  unmet: string;
  tries: number;
  waitedMs: number;
  outputTail: string;
  tailLabel: string;
  where?: string;
  hint?: string;
}

/** A probe never met its expectation before the readiness deadline. */
export class ProbeFailedError extends AimError {
  readonly failure: ProbeFailure;
  constructor(f: ProbeFailure) {
    const tail = f.outputTail.trimEnd();
    super(
      'E_PROBE_FAILED',
      `probe ${f.probe} did not meet its expectation (${f.expectation})${f.where ? ` ${f.where}` : ''} in ${f.tries} ${f.tries === 1 ? 'try' : 'tries'} ` +
        `over ${(f.waitedMs / 1000).toFixed(1)} s; last: ${f.unmet}` +
        (tail ? `\n--- last output of the ${f.tailLabel} ---\n${tail}` : ` (no output from the ${f.tailLabel})`),
      ExitCode.verifyFailed,
      {
        hint:
          f.hint ??
          'check that the service starts and answers as expected (run it by hand in the image); give the probe the status, exit code or text it really answers with, or raise --ready-timeout for slow starts',
      },
    );
    this.failure = { ...f, outputTail: tail };
  }

  override toJSON(): Record<string, unknown> {
    const { probe, expectation, last, unmet, tries, waitedMs, outputTail } = this.failure;
    // the tail is in the message too; here it is for programs
    return { ...super.toJSON(), probe, expectation, last, unmet, tries, waitedMs, outputTail };
  }
}
