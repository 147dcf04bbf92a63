import { defineConfig } from 'vitest/config';
import SlowestReporter from './test/helpers/slowest-reporter.js';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 300_000,
    pool: 'forks',
    maxWorkers: 2,
    reporters: ['default', new SlowestReporter()],
  },
});
