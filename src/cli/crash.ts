import { redact } from '../lib/redact.js';
import { toAimError } from '../lib/system-errors.js';

/**
 * The last net: an error no command caught (an 'error' event with no listener, a rejection
 * nobody awaited) is reported like any other, as an aim error with a hint (one JSON document with
 * --json) and the documented exit code, never as Node's raw stack. The stack only with DEBUG.
 */
export function installCrashHandler(argv: readonly string[] = process.argv): void {
  const report = (e: unknown) => {
    const error = toAimError(e);
    if (argv.includes('--json')) process.stdout.write(`${JSON.stringify({ error: error.toJSON() }, null, 2)}\n`);
    else process.stderr.write(`aim: ${error.message}\n${error.hint ? `hint: ${error.hint}\n` : ''}`);
    if (process.env.DEBUG && e instanceof Error && e.stack) process.stderr.write(`${redact(e.stack)}\n`);
    process.exit(error.exitCode);
  };
  process.on('uncaughtException', report);
  process.on('unhandledRejection', report);
}
