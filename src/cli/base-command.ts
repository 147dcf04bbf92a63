import { Command, Errors, Flags, type Interfaces } from '@oclif/core';
import { ConfigError, ExitCode, InterruptedError, isAimError } from '../lib/errors.js';
import { redact, redactDeep } from '../lib/redact.js';
import { toAimError } from '../lib/system-errors.js';
import type { Reporter } from '../lib/reporter.js';
import { defaultRepoPath, openRepository, type Repository } from '../core/repository/repository.js';
import { StderrReporter } from './render.js';

export type BaseFlags<T extends typeof Command> = Interfaces.InferredFlags<(typeof AimCommand)['baseFlags'] & T['flags']>;

/** oclif's parser errors (unknown flag, missing argument, bad option value) carry exit code 2. */
function isUsageError(err: Error & { oclif?: { exit?: number } }): boolean {
  return err instanceof Errors.CLIError && err.oclif?.exit === ExitCode.usage;
}

/**
 * What every aim command shares: --json, --repo, a reporter drawing core events on stderr, and
 * the mapping of AimError to a one-line message, a hint and the documented exit code.
 */
export abstract class AimCommand extends Command {
  static override enableJsonFlag = true;

  static override baseFlags = {
    repo: Flags.string({
      description: 'repository directory [default: $AIM_REPO, else ~/.local/share/aim/repo]',
      helpGroup: 'GLOBAL',
    }),
  };

  private opened: Repository | undefined;
  private interrupt: AbortController | undefined;
  private readonly onSigint = () => {
    // A second Ctrl-C while cleanup runs: give up at once.
    if (this.interrupt?.signal.aborted) process.exit(ExitCode.interrupted);
    this.interrupt?.abort(new InterruptedError('interrupted (Ctrl-C): what this command had written was removed'));
  };
  private readonly onSigterm = () => {
    if (this.interrupt?.signal.aborted) process.exit(ExitCode.interrupted);
    this.interrupt?.abort(new InterruptedError('interrupted (SIGTERM): what this command had written was removed'));
  };

  protected reporter(): Reporter {
    return new StderrReporter(this.jsonEnabled());
  }

  /**
   * A signal that aborts on Ctrl-C or SIGTERM, for long work that cleans up after itself (builds, uploads):
   * the work stops, removes its partial output and the command exits 130. Commands that never ask
   * for it keep Node's default (Ctrl-C kills at once), which is what crash-safe imports rely on.
   */
  protected abortSignal(): AbortSignal {
    if (!this.interrupt) {
      this.interrupt = new AbortController();
      process.on('SIGINT', this.onSigint);
      process.on('SIGTERM', this.onSigterm);
    }
    return this.interrupt.signal;
  }

  protected repoPath(flag: string | undefined): string {
    return flag ?? defaultRepoPath();
  }

  protected async repository(flag: string | undefined): Promise<Repository> {
    this.opened = await openRepository(this.repoPath(flag));
    return this.opened;
  }

  protected override async finally(err: Error | undefined): Promise<unknown> {
    if (this.interrupt) {
      process.off('SIGINT', this.onSigint);
      process.off('SIGTERM', this.onSigterm);
    }
    if (this.opened) await this.opened.close().catch(() => {});
    return super.finally(err);
  }

  // Everything a command prints goes through lib/redact: no credential reaches stdout or stderr.
  override log(message = '', ...args: unknown[]): void {
    super.log(typeof message === 'string' ? redact(message) : message, ...args.map((a) => (typeof a === 'string' ? redact(a) : a)));
  }

  override logToStderr(message = '', ...args: unknown[]): void {
    super.logToStderr(typeof message === 'string' ? redact(message) : message, ...args.map((a) => (typeof a === 'string' ? redact(a) : a)));
  }

  override logJson(json: unknown): void {
    super.logJson(redactDeep(json));
  }

  /**
   * Every failure becomes one AimError: a code, a message and a hint, and with --json exactly one
   * document, `{ "error": {code, message, hint, exitCode, …}, "result": <what the command had
   * produced (AimError's result, e.g. verify's report), or null> }`. Node's system errors (a full
   * disk, a read-only filesystem) get aim codes and hints (lib/system-errors); anything else is an
   * internal error, never Node's raw object.
   */
  protected override async catch(err: Error & { exitCode?: number }): Promise<unknown> {
    // oclif's own exits (this.exit, --help, --version) are not failures
    if (err instanceof Errors.ExitError) return super.catch(err);
    if (!isAimError(err) && isUsageError(err)) {
      // Under --json a usage error is a JSON error document too, not oclif's plain text.
      if (!this.jsonEnabled()) {
        err.message = redact(err.message);
        return super.catch(err);
      }
      const lines = err.message.split('\n').map((l) => l.trim()).filter((l) => l && !/^(See more help with|The following errors? occurred)/.test(l));
      err = new ConfigError(lines.join('; ') || 'invalid usage', { hint: `see: ${[this.config.bin, ...(this.id ?? '').split(':').filter(Boolean)].join(' ')} --help` });
    }
    const error = toAimError(err, this.opened ? `the repository ${this.opened.root} or the output directory` : undefined);
    if (this.jsonEnabled()) this.logJson({ error: error.toJSON(), result: error.result ?? null });
    else {
      process.stderr.write(`aim: ${error.message}\n${error.hint ? `hint: ${error.hint}\n` : ''}`);
      // a bug's stack, for its report
      if (error.code === 'E_INTERNAL' && process.env.DEBUG && err.stack) process.stderr.write(`${redact(err.stack)}\n`);
    }
    // oclif exits with process.exit, which drops what a pipe has not taken yet: a large result
    // (aim impact's report over a fleet) would be cut at 64 KiB. Wait until both streams took it all.
    await Promise.all([process.stdout, process.stderr].map((s) => new Promise<void>((resolve) => s.write('', () => resolve()))));
    this.exit(error.exitCode);
    return undefined;
  }
}
