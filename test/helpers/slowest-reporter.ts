import type { Reporter, TestModule } from 'vitest/node';

/** How many of the slowest test files the summary lists. */
const SHOWN = 30;
/** How many of the slowest single tests it lists after them. */
const SHOWN_TESTS = 15;

/**
 * Ends a run with its slowest test files (tests and hooks, so set-up in beforeAll counts), their
 * share of the run's test time and how much of it went to hooks rather than tests, then the
 * slowest single tests: the figures the suite's time budget (under 30 minutes on 2 cores) is kept
 * with. Printed last, so CI's tail of the output holds them.
 */
export default class SlowestReporter implements Reporter {
  onTestRunEnd(modules: ReadonlyArray<TestModule>): void {
    const rows = modules
      .map((m) => {
        const tests = [...m.children.allTests()].map((t) => ({ name: t.fullName, s: (t.diagnostic()?.duration ?? 0) / 1000 }));
        const s = m.diagnostic().duration / 1000;
        return { file: m.relativeModuleId, s, hooks: Math.max(0, s - tests.reduce((n, t) => n + t.s, 0)), tests, state: m.state() };
      })
      .sort((a, b) => b.s - a.s);
    const total = rows.reduce((n, r) => n + r.s, 0);
    if (rows.length === 0) return;
    const lines = [`slowest test files (of ${rows.length}; ${total.toFixed(0)} s of test time in all, tests and hooks; hooks = beforeAll/afterAll and the like):`];
    for (const r of rows.slice(0, SHOWN)) {
      lines.push(`${r.s.toFixed(0).padStart(6)} s ${((100 * r.s) / total).toFixed(1).padStart(5)}%  hooks ${r.hooks.toFixed(0).padStart(4)} s  ${r.file}${r.state === 'passed' ? '' : ` (${r.state})`}`);
    }
    const tests = rows.flatMap((r) => r.tests.map((t) => ({ ...t, file: r.file }))).sort((a, b) => b.s - a.s);
    lines.push(`slowest tests (of ${tests.length}):`);
    for (const t of tests.slice(0, SHOWN_TESTS)) lines.push(`${t.s.toFixed(0).padStart(6)} s  ${t.file} > ${t.name.length > 110 ? `${t.name.slice(0, 107)}...` : t.name}`);
    process.stdout.write(`${lines.join('\n')}\n`);
  }
}
