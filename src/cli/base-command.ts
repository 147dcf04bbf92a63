import { Command, Flags, type Interfaces } from '@oclif/core';
import { isAimError } from '../lib/errors.js';
import type { Reporter } from '../lib/reporter.js';
import { defaultRepoPath, openRepository, type Repository } from '../core/repository/repository.js';
import { StderrReporter } from './render.js';

export type BaseFlags<T extends typeof Command> = Interfaces.InferredFlags<(typeof AimCommand)['baseFlags'] & T['flags']>;

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

  protected reporter(): Reporter {
    return new StderrReporter(this.jsonEnabled());
  }

  protected repoPath(flag: string | undefined): string {
    return flag ?? defaultRepoPath();
  }

  protected async repository(flag: string | undefined): Promise<Repository> {
    this.opened = await openRepository(this.repoPath(flag));
    return this.opened;
  }

  protected override async finally(err: Error | undefined): Promise<unknown> {
    if (this.opened) await this.opened.close().catch(() => {});
    return super.finally(err);
  }

  protected override async catch(err: Error & { exitCode?: number }): Promise<unknown> {
    if (isAimError(err)) {
      if (this.jsonEnabled()) this.logJson({ error: err.toJSON() });
      else process.stderr.write(`aim: ${err.message}\n${err.hint ? `hint: ${err.hint}\n` : ''}`);
      this.exit(err.exitCode);
    }
    return super.catch(err);
  }
}
