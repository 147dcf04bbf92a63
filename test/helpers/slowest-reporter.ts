import type { Reporter, TestModule } from 'vitest/node';

/** How many of the slowest test files the summary lists. */
const SHOWN = 30;

/**
 * Ends a run with its slowest test files (tests and hooks, so set-up in beforeAll counts) and
 * their share of the run's test time: the figures the suite's time budget (under 30 minutes on
 * 2 cores) is kept with. Printed last, so CI's tail of the output holds them.
 */
export default class SlowestReporter implements Reporter {
  onTestRunEnd(modules: ReadonlyArray<TestModule>): void {
    const rows = modules.map((m) => ({ file: m.relativeModuleId, s: m.diagnostic().duration / 1000, state: m.state() })).sort((a, b) => b.s - a.s);
    const total = rows.reduce((n, r) => n + r.s, 0);
    if (rows.length === 0) return;
    const lines = [`slowest test files (of ${rows.length}; ${total.toFixed(0)} s of test time in all, tests and hooks):`];
    for (const r of rows.slice(0, SHOWN)) lines.push(`${r.s.toFixed(0).padStart(6)} s ${((100 * r.s) / total).toFixed(1).padStart(5)}%  ${r.file}${r.state === 'passed' ? '' : ` (${r.state})`}`);
    process.stdout.write(`${lines.join('\n')}\n`);
  }
}
