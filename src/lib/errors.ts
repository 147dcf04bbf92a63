import { redact } from './redact.js';

/**
 * The one error family of aim. Every error has a stable `code`, the process `exitCode` the CLI
 * uses for it, and a `hint` telling the user what to do. Only the CLI top level turns errors into
 * exit codes; core code throws.
 */
export const ExitCode = {
  internal: 1,
  usage: 2,
  notFound: 3,
  badInput: 4,
  missingTool: 5,
  toolFailed: 6,
  permission: 7,
  integrity: 8,
  busy: 9,
  provider: 10,
  verifyFailed: 11,
  /** The machine stopped the command: disk full, too many open files, an I/O error. */
  system: 12,
  /** aim impact: an image uses a file the update changes (its profile traced it). */
  impactInUse: 13,
  /** 128 + SIGINT, as shells report a Ctrl-C. */
  interrupted: 130,
} as const;

export interface AimErrorOptions {
  hint?: string;
  cause?: unknown;
  /** What the command had produced when it failed (a verify report); printed as `result` with --json. */
  result?: unknown;
}

export class AimError extends Error {
  readonly code: string;
  readonly exitCode: number;
  readonly hint?: string;
  readonly result?: unknown;

  /** Message and hint never carry credentials (lib/redact), whatever they were built from. */
  constructor(code: string, message: string, exitCode: number = ExitCode.internal, options: AimErrorOptions = {}) {
    super(redact(message), options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.exitCode = exitCode;
    this.hint = options.hint === undefined ? undefined : redact(options.hint);
    if (options.result !== undefined) this.result = options.result;
  }

  toJSON(): Record<string, unknown> {
    return { code: this.code, message: redact(this.message), exitCode: this.exitCode, hint: this.hint === undefined ? undefined : redact(this.hint) };
  }
}

/** Wrong flags, bad configuration or template. */
export class ConfigError extends AimError {
  constructor(message: string, options: AimErrorOptions = {}) {
    super('E_CONFIG', message, ExitCode.usage, options);
  }
}

/** A named image, tag, profile or repository does not exist. */
export class NotFoundError extends AimError {
  constructor(message: string, options: AimErrorOptions = {}) {
    super('E_NOT_FOUND', message, ExitCode.notFound, options);
  }
}

/** The input (archive, directory, disk image) is malformed, unsafe or unsupported. */
export class InputError extends AimError {
  constructor(code: string, message: string, options: AimErrorOptions = {}) {
    super(code, message, ExitCode.badInput, options);
  }
}

/** An external tool aim needs is not installed. */
export class MissingToolError extends AimError {
  readonly tool: string;
  constructor(tool: string, purpose: string, debianPackage: string) {
    super('E_TOOL_MISSING', `${tool} not found: needed to ${purpose}`, ExitCode.missingTool, {
      hint: `apt-get install ${debianPackage} (or run: npm run setup)`,
    });
    this.tool = tool;
  }
}

/** An external tool ran and failed. Keeps the command line, exit code and stderr tail. */
export class ToolFailedError extends AimError {
  readonly command: string[];
  readonly toolExitCode: number | undefined;
  readonly stderrTail: string;
  constructor(command: string[], toolExitCode: number | undefined, stderrTail: string, options: AimErrorOptions = {}) {
    const tail = stderrTail.trim().split('\n').slice(-5).join('\n');
    super(
      'E_TOOL_FAILED',
      `${command[0]} failed (exit ${toolExitCode ?? 'signal'})${tail ? `: ${tail}` : ''}`,
      ExitCode.toolFailed,
      options,
    );
    this.command = command.map(redact);
    this.toolExitCode = toolExitCode;
    this.stderrTail = redact(tail);
  }
}

/** The operation needs privileges (root, CAP_MKNOD, CAP_SYS_ADMIN) the process lacks. */
export class PermissionError extends AimError {
  constructor(message: string, options: AimErrorOptions = {}) {
    super('E_PERMISSION', message, ExitCode.permission, options);
  }
}

/** The repository is damaged: a blob does not match its hash, a reference is dangling. */
export class IntegrityError extends AimError {
  constructor(message: string, options: AimErrorOptions = {}) {
    super('E_INTEGRITY', message, ExitCode.integrity, options);
  }
}

/** Another process holds a lock aim needs (gc versus import). */
export class BusyError extends AimError {
  constructor(message: string, options: AimErrorOptions = {}) {
    super('E_BUSY', message, ExitCode.busy, options);
  }
}

/** A cloud or provider endpoint refused or failed. */
export class ProviderError extends AimError {
  constructor(message: string, options: AimErrorOptions = {}) {
    super('E_PROVIDER', message, ExitCode.provider, options);
  }
}

/** The user interrupted the command (Ctrl-C); what it had written is removed. */
export class InterruptedError extends AimError {
  constructor(message = 'interrupted', options: AimErrorOptions = {}) {
    super('E_INTERRUPTED', message, ExitCode.interrupted, options);
  }
}

/**
 * Long work stopped because its caller cancelled it through its AbortSignal (a server shutting
 * down, a client gone); what the work had written is removed. Ctrl-C at the CLI is the
 * InterruptedError the command aborts with instead.
 */
export class CancelledError extends AimError {
  constructor(message = 'cancelled: the work was stopped and what it had written removed', options: AimErrorOptions = {}) {
    super('E_CANCELLED', message, ExitCode.interrupted, options);
  }
}

/**
 * The error work stopped by `signal` rejects with: the signal's reason when it is an AimError (the
 * CLI aborts with an InterruptedError on Ctrl-C), else a CancelledError carrying the reason.
 */
export function cancellationError(signal: AbortSignal): AimError {
  const reason: unknown = signal.reason;
  return reason instanceof AimError ? reason : new CancelledError(undefined, { cause: reason });
}

/** Throws the cancellation error once `signal` has aborted: long work calls it between its steps. */
export function throwIfCancelled(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw cancellationError(signal);
}

/** A bug in aim: an invariant did not hold. */
export class InternalError extends AimError {
  constructor(message: string, options: AimErrorOptions = {}) {
    super('E_INTERNAL', message, ExitCode.internal, options);
  }
}

export function isAimError(e: unknown): e is AimError {
  return e instanceof AimError;
}

/** Node system errors carry a string `code` such as ENOENT. */
export function errnoCode(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null && 'code' in e && typeof (e as { code: unknown }).code === 'string'
    ? (e as { code: string }).code
    : undefined;
}
