import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { HAS_GCC } from '../helpers/c-programs.js';
import { runTraceStress } from '../helpers/trace-stress.js';

const which = (tool: string) => `${process.env.PATH ?? ''}:/usr/sbin:/sbin`.split(':').map((d) => join(d, tool)).find((p) => p !== tool && existsSync(p));
const BUSYBOX = which('busybox');
const CAN_RUN = process.getuid?.() === 0 && HAS_GCC && BUSYBOX !== undefined && ['strace', 'unshare', 'nsenter', 'setpriv', 'ip', 'chroot', 'mount', 'mknod'].every((t) => which(t) !== undefined);

/**
 * AIM_TRACE_STRESS=N runs N iterations (the normal suite runs 3). AIM_TRACE_STRESS_INNER_CHURN=K
 * adds K short-lived processes inside the sandbox per iteration (default 400). Where the kernel
 * has a pid_max per pid namespace, the sandbox's is lowered to 330 once it is ready: after the
 * churn its new pids cycle through 300..329, so the pages' httpd children and the forks reuse pid
 * numbers within one trace. AIM_TRACE_STRESS_SPINNERS sets the CPU load (default 1);
 * AIM_TRACE_STRESS_REPORT=FILE writes the figures as JSON; AIM_TRACE_STRESS_KEEP=DIR keeps the raw
 * traces of iterations that missed something.
 */
const ITERATIONS = Number(process.env.AIM_TRACE_STRESS ?? 3);
const INNER_CHURN = Number(process.env.AIM_TRACE_STRESS_INNER_CHURN ?? 400);

describe.skipIf(!CAN_RUN)('trace stress (root, strace, gcc, busybox-static)', () => {
  it(`misses no open in ${ITERATIONS} runs under pid churn and CPU load`, async () => {
    const result = await runTraceStress({
      busybox: BUSYBOX!,
      iterations: ITERATIONS,
      requests: 20,
      forks: 40,
      innerChurn: INNER_CHURN,
      innerPidMax: 330,
      spinners: Number(process.env.AIM_TRACE_STRESS_SPINNERS ?? 1),
      churn: true,
      keepFailedDir: process.env.AIM_TRACE_STRESS_KEEP || undefined,
      log: ITERATIONS > 3 ? (line) => process.stderr.write(`trace-stress ${line}\n`) : undefined,
    });
    process.stderr.write(`trace-stress: ${JSON.stringify(result)}\n`);
    if (process.env.AIM_TRACE_STRESS_REPORT) await writeFile(process.env.AIM_TRACE_STRESS_REPORT, JSON.stringify(result, null, 2));
    expect(result.errors).toEqual([]);
    expect(result.iterations).toBe(ITERATIONS);
    expect(result.expected).toBe(ITERATIONS * 61);
    expect(result).toMatchObject({ missed: 0, iterationsWithMisses: 0, untied: 0 });
  }, 60_000 + ITERATIONS * (30_000 + INNER_CHURN * 2));
});
