import createDebug from 'debug';
import { formatWithOptions } from 'node:util';
import { redact } from './redact.js';

// Every DEBUG line (aim's and its libraries' that use the same debug) is redacted before stderr.
createDebug.log = (...args: unknown[]) => process.stderr.write(`${redact(formatWithOptions((createDebug as { inspectOpts?: object }).inspectOpts ?? {}, ...args))}\n`);

/** Debug tracing under DEBUG=aim:* namespaces (stderr only, credentials redacted). */
export function debugLog(namespace: string): createDebug.Debugger {
  return createDebug(`aim:${namespace}`);
}
