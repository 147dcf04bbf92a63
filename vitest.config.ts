import { configDefaults, defineConfig } from 'vitest/config';
import SlowestReporter from './test/helpers/slowest-reporter.js';

export default defineConfig({
  test: {
    testTimeout: 120_000,
    hookTimeout: 300_000,
    pool: 'forks',
    maxWorkers: 2,
    reporters: ['default', new SlowestReporter()],
    projects: [
      // Unit tests share their workers' processes (no fresh process and module graph per file):
      // they start no servers, change no process-wide state and mock nothing (but one file, which
      // restores its mock), and the 76 files take 50 s instead of 74 s, 85 CPU-s instead of 130.
      { extends: true, test: { name: 'unit', include: ['test/unit/**/*.test.ts'], isolate: false } },
      // Everything else runs each file in a process of its own: servers, namespaces, QEMU, kills.
      { extends: true, test: { name: 'system', include: ['test/**/*.test.ts'], exclude: [...configDefaults.exclude, 'test/unit/**'] } },
    ],
  },
});
