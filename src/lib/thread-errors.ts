import { AimError } from './errors.js';

/** An error as it crosses a thread boundary (structured clone keeps neither class nor own fields reliably). */
export interface SerializedError {
  aim: boolean;
  name: string;
  message: string;
  code?: string;
  exitCode?: number;
  hint?: string;
  errno?: number;
  syscall?: string;
  path?: string;
  dest?: string;
}

export function serializeError(e: unknown): SerializedError {
  if (e instanceof AimError) return { aim: true, name: e.name, message: e.message, code: e.code, exitCode: e.exitCode, hint: e.hint };
  const err = (e instanceof Error ? e : new Error(String(e))) as NodeJS.ErrnoException & { dest?: string };
  return { aim: false, name: err.name, message: err.message, code: err.code, errno: err.errno, syscall: err.syscall, path: err.path, dest: err.dest };
}

/**
 * The error again, on this side: an AimError with its code, exit code and hint, or a system
 * error with its errno fields, so the mappings that look at `code` (system-errors.ts, EACCES →
 * E_PERMISSION) treat it as if it had been thrown here.
 */
export function deserializeError(s: SerializedError): Error {
  if (s.aim) {
    const e = new AimError(s.code ?? 'E_INTERNAL', s.message, s.exitCode, { hint: s.hint });
    e.name = s.name;
    return e;
  }
  const e = new Error(s.message) as NodeJS.ErrnoException & { dest?: string };
  e.name = s.name;
  if (s.code !== undefined) e.code = s.code;
  if (s.errno !== undefined) e.errno = s.errno;
  if (s.syscall !== undefined) e.syscall = s.syscall;
  if (s.path !== undefined) e.path = s.path;
  if (s.dest !== undefined) e.dest = s.dest;
  return e;
}
