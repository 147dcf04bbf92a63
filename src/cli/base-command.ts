import { Command, Errors, Flags, type Interfaces } from '@oclif/core';
import { ConfigError, ExitCode, InterruptedError, isAimError } from '../lib/errors.js';
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

  protected reporter(): Reporter {
    return new StderrReporter(this.jsonEnabled());
  }

  /**
   * A signal that aborts on Ctrl-C, for long work that cleans up after itself (builds, uploads):
   * the work stops, removes its partial output and the command exits 130. Commands that never ask
   * for it keep Node's default (Ctrl-C kills at once), which is what crash-safe imports rely on.
   */
  protected abortSignal(): AbortSignal {
    if (!this.interrupt) {
      this.interrupt = new AbortController();
      process.on('SIGINT', this.onSigint);
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
    if (this.interrupt) process.off('SIGINT', this.onSigint);
    if (this.opened) await this.opened.close().catch(() => {});
    return super.finally(err);
  }

  protected override async catch(err: Error & { exitCode?: number }): Promise<unknown> {
    // Under --json a usage error is a JSON error document too, not oclif's plain text.
    if (!isAimError(err) && isUsageError(err) && this.jsonEnabled()) {
      const lines = err.message.split('\n').map((l) => l.trim()).filter((l) => l && !/^(See more help with|The following errors? occurred)/.test(l));
      err = new ConfigError(lines.join('; ') || 'invalid usage', { hint: `see: ${[this.config.bin, ...(this.id ?? '').split(':').filter(Boolean)].join(' ')} --help` });
    }
    if (isAimError(err)) {
      if (this.jsonEnabled()) this.logJson({ error: err.toJSON() });
      else process.stderr.write(`aim: ${err.message}\n${err.hint ? `hint: ${err.hint}\n` : ''}`);
      this.exit(err.exitCode);
    }
    return super.catch(err);
  }
}
