import { expect } from 'vitest';
import { aim } from '../../helpers/cli.js';
import { templatePath } from '../../helpers/examples.js';
import { goldTar } from '../../helpers/gold.js';

/**
 * Adds the slim redis image to a repository, made as the examples test makes it from
 * examples/redis/template.yaml (profile with its probes, then slim), from the cached gold redis
 * tar that the runtime tests share.
 */
export async function addSlimRedis(repo: string): Promise<void> {
  const run = async (...args: string[]) => {
    const r = await aim([...args, '--repo', repo]);
    expect(r.exitCode, `aim ${args.join(' ')}: ${r.stderr}`).toBe(0);
  };
  await run('image', 'import', await goldTar('redis'), '--tag', 'gold/redis:1');
  await run('profile', 'run', '--template', templatePath('redis'));
  await run('slim', '--template', templatePath('redis'));
}
