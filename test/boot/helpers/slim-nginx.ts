import { expect } from 'vitest';
import { aim } from '../../helpers/cli.js';
import { goldTar } from '../../helpers/gold.js';
import { kernelDebDir } from '../../helpers/kernel.js';
import { preparedRepo } from '../../helpers/prepared-repo.js';

const runIn = (repo: string) => async (...args: string[]) => {
  const r = await aim([...args, '--repo', repo]);
  expect(r.exitCode, `aim ${args.join(' ')}: ${r.stderr}`).toBe(0);
  return r;
};

/**
 * A repository holding what boot tests need: the slim nginx image (made as the profile-run
 * integration test makes it, from the cached gold nginx tar) and the kernel core; made once per
 * version of aim and copied (test/helpers/prepared-repo.ts).
 */
export async function prepareSlimNginx(repo: string): Promise<void> {
  await preparedRepo(repo, 'slim-nginx-kernel', [await goldTar('nginx'), kernelDebDir], async (made) => {
    await runIn(made)('repo', 'init');
    await addSlimNginx(made);
    await addKernelCore(made);
  });
}

/** A repository holding gold/nginx:1, its profile `web` and slim/nginx:1 (as addSlimNginx makes them), made once per version of aim and copied. */
export async function prepareSlimNginxOnly(repo: string): Promise<void> {
  await preparedRepo(repo, 'slim-nginx', [await goldTar('nginx')], async (made) => {
    await runIn(made)('repo', 'init');
    await addSlimNginx(made);
  });
}

/** The slim nginx image, into an initialised repository (other writes may run meanwhile). */
export async function addSlimNginx(repo: string): Promise<void> {
  const run = runIn(repo);
  await run('image', 'import', await goldTar('nginx'), '--tag', 'gold/nginx:1');
  await run('profile', 'run', 'gold/nginx:1', '--run', "nginx -g 'daemon off;'", '--ready-port', '80', '--probe', 'http://127.0.0.1:80/', '--name', 'web', '--duration', '3s');
  await run('slim', 'gold/nginx:1', '--profile', 'web', '--tag', 'slim/nginx:1');
}

/** Debian's kernel as the repository's kernel core. */
export async function addKernelCore(repo: string): Promise<void> {
  await runIn(repo)('core', 'kernel', '--deb-dir', kernelDebDir);
}
