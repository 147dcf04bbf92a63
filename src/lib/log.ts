import createDebug from 'debug';

/** Debug tracing under DEBUG=aim:* namespaces (stderr only). */
export function debugLog(namespace: string): createDebug.Debugger {
  return createDebug(`aim:${namespace}`);
}
