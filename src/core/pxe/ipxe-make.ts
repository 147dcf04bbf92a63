import { createWriteStream } from 'node:fs';
import { basename } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { ToolFailedError, throwIfCancelled } from '../../lib/errors.js';
import { loadExeca } from '../../lib/exec.js';
import { debugLog } from '../../lib/log.js';

const debug = debugLog('ipxe');

/** Lines of the build's stderr kept for the error (the message shows the last few, --json all of them). */
const TAIL_LINES = 40;

/** make -j lines that say nothing about the failure itself. */
const NOISE = /^make(\[\d+\])?: \*\*\* Waiting for unfinished jobs/;

export interface LoggedRun {
  cwd: string;
  env: Record<string, string>;
  /** Every line of stdout and stderr is appended here. */
  log: string;
  signal?: AbortSignal;
  /** Each line of stdout, as it comes (progress). */
  onLine?: (line: string) => void;
  /** What to do when it fails, for the error's hint. */
  hint: string;
}

function lines(stream: Readable | null, each: (line: string) => void): Promise<void> {
  if (!stream) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const rl = createInterface({ input: stream, crlfDelay: Infinity });
    rl.on('line', each);
    rl.once('close', resolve);
    stream.once('error', reject);
  });
}

/**
 * Runs one step of iPXE's build (make, util/genfsimg) with an argument array, streaming its output
 * into a log file line by line (nothing is kept whole in memory). `signal` is execa's cancelSignal;
 * the step runs in a process group of its own, and cancelling also stops the whole group (make's
 * shells and compilers, which would otherwise run on and keep the output pipes open), with SIGKILL
 * 5 s after SIGTERM. A failure is a ToolFailedError carrying the tail of stderr; its `result`
 * names the whole log.
 */
export async function runLogged(file: string, args: string[], run: LoggedRun): Promise<void> {
  debug('%s %o in %s', file, args, run.cwd);
  const log = createWriteStream(run.log, { flags: 'a' });
  const tail: string[] = [];
  let stopGroup = () => {};
  let killer: NodeJS.Timeout | undefined;
  try {
    log.write(`$ ${[file, ...args].join(' ')}\n`);
    const { execa } = await loadExeca();
    const child = execa(file, args, {
      cwd: run.cwd,
      env: run.env,
      stdin: 'ignore',
      buffer: false,
      reject: false,
      detached: true,
      cancelSignal: run.signal,
      forceKillAfterDelay: 5000,
    });
    const group = (sig: NodeJS.Signals) => {
      try {
        if (child.pid) process.kill(-child.pid, sig);
      } catch {
        // the group is gone already
      }
    };
    stopGroup = () => {
      group('SIGTERM');
      killer = setTimeout(() => group('SIGKILL'), 5000);
      killer.unref();
    };
    run.signal?.addEventListener('abort', stopGroup, { once: true });
    const [result] = await Promise.all([
      child,
      lines(child.stdout, (l) => {
        log.write(`${l}\n`);
        run.onLine?.(l);
      }),
      lines(child.stderr, (l) => {
        log.write(`${l}\n`);
        if (NOISE.test(l)) return;
        tail.push(l);
        if (tail.length > TAIL_LINES) tail.shift();
      }),
    ]);
    throwIfCancelled(run.signal);
    if (result.failed) {
      throw new ToolFailedError([basename(file), ...args], result.exitCode, tail.join('\n') || String(result.message ?? ''), {
        hint: `${run.hint}; the whole output is in ${run.log}`,
        result: { log: run.log, tail },
      });
    }
  } finally {
    run.signal?.removeEventListener('abort', stopGroup);
    await new Promise<void>((resolve) => log.end(resolve));
  }
}
