// EC2 provider benchmark (issue 11): what `aim ship aws` sends to the local AWS stand-ins (the
// fake EC2 and EBS servers and s3rver of test/helpers/aws, which count every request and byte)
// for the slim nginx image of examples/aws-nginx: a first ship, a re-ship of the same image, and a
// ship after a one-package update (nginx's .deb rebuilt with dpkg-deb from the gold's files, its
// binary changed, installed into the gold tree with dpkg), by the EBS direct path and by the
// import-snapshot path (the whole stream-optimized VMDK through S3). Time per ship, wall clock.
import { execFile, execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { loadAwsFake } from '../scripts/aws-fake.mjs';
import { cache, devCache, extracted, machine, root, writeResults } from './lib.mjs';

const run = promisify(execFile);
const MiB = 1024 * 1024;
const EXAMPLE = join(root, 'examples', 'aws-nginx', 'template.yaml');

/** aim with --json, asynchronously (the fake servers live in this process and must keep answering). */
async function aim(repo, env, ...args) {
  const t0 = Date.now();
  const r = await run(process.execPath, [join(root, 'bin', 'run.js'), ...args, '--repo', repo, '--json'], { env: { ...process.env, ...env }, maxBuffer: 1 << 28 }).catch((e) => e);
  const seconds = (Date.now() - t0) / 1000;
  if (r.code) throw new Error(`aim ${args.join(' ')} failed (${r.code}): ${String(r.stdout).slice(-800)}${String(r.stderr).slice(-800)}`);
  return { json: JSON.parse(r.stdout), seconds };
}


/**
 * The gold tree after a one-package update: nginx's package rebuilt with dpkg-deb from the files
 * the gold holds, its binary changed in place (the version string 1.22.1 → 1.22.9), version +aim1,
 * and installed with dpkg into a copy of the tree.
 */
function updatedGold(goldTar, work) {
  const tree = join(work, 'gold2');
  rmSync(tree, { recursive: true, force: true });
  extracted(goldTar, tree);
  rmSync(join(tree, '.complete'));
  const pkg = join(work, 'nginx-pkg');
  rmSync(pkg, { recursive: true, force: true });
  mkdirSync(join(pkg, 'DEBIAN'), { recursive: true });
  for (const path of readFileSync(join(tree, 'var/lib/dpkg/info/nginx.list'), 'utf8').split('\n').filter((p) => p && p !== '/.')) {
    const from = join(tree, path);
    if (!existsSync(from) || execFileSync('stat', ['-c', '%F', from], { encoding: 'utf8' }).trim() !== 'regular file') continue;
    mkdirSync(dirname(join(pkg, path)), { recursive: true });
    copyFileSync(from, join(pkg, path));
    chmodSync(join(pkg, path), Number.parseInt(execFileSync('stat', ['-c', '%a', from], { encoding: 'utf8' }).trim(), 8));
  }
  const control = execFileSync('dpkg-query', [`--admindir=${join(tree, 'var/lib/dpkg')}`, '-s', 'nginx'], { encoding: 'utf8' })
    .split('\n')
    .filter((l) => !l.startsWith('Status:'))
    .map((l) => (l.startsWith('Version: ') ? `${l}+aim1` : l))
    .join('\n');
  writeFileSync(join(pkg, 'DEBIAN', 'control'), `${control.trim()}\n`);
  const binary = join(pkg, 'usr', 'sbin', 'nginx');
  const bytes = readFileSync(binary);
  const at = bytes.indexOf('nginx/1.22.1');
  if (at < 0) throw new Error('the nginx binary holds no version string nginx/1.22.1 to change');
  bytes.write('nginx/1.22.9', at);
  writeFileSync(binary, bytes);
  const deb = join(work, 'nginx_update.deb');
  execFileSync('dpkg-deb', ['--root-owner-group', '--build', pkg, deb], { stdio: 'ignore' });
  execFileSync('dpkg', [`--root=${tree}`, '--force-depends', '-i', deb], { stdio: 'ignore' });
  return tree;
}

export default async function awsBench() {
  const dist = {
    ...(await import(join(root, 'dist', 'src', 'core', 'template', 'index.js'))),
    ...(await import(join(root, 'dist', 'src', 'core', 'import', 'gold-cache.js'))),
    ...(await import(join(root, 'dist', 'src', 'core', 'import', 'gold-debian.js'))),
  };
  const work = join(cache, 'bench', 'aws');
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const { startAwsFake } = await loadAwsFake(join(work, 'fake-js'));
  const repo = join(work, 'repo');
  const loaded = await dist.loadTemplate(EXAMPLE);
  console.error('bench aws: gold, profile, slim (examples/aws-nginx), kernel core');
  const goldTar = await dist.cachedGoldTar(join(devCache, 'gold'), { packages: loaded.template.gold.include, copyIns: await dist.resolveCopyIns(dist.templateCopyIns(loaded)) });
  const none = {};
  await aim(repo, none, 'repo', 'init');
  await aim(repo, none, 'image', 'import', goldTar, '--tag', 'gold/aws-nginx:1');
  await aim(repo, none, 'profile', 'run', '--template', EXAMPLE);
  await aim(repo, none, 'slim', '--template', EXAMPLE);
  await aim(repo, none, 'core', 'kernel', '--deb-dir', join(devCache, 'kernel'));
  console.error('bench aws: one-package update (nginx rebuilt with dpkg-deb, installed with dpkg)');
  await aim(repo, none, 'image', 'import', updatedGold(goldTar, work), '--tag', 'gold/aws-nginx:2');
  await aim(repo, none, 'profile', 'run', 'gold/aws-nginx:2', '--template', EXAMPLE, '--name', 'aws-nginx-2');
  await aim(repo, none, 'slim', 'gold/aws-nginx:2', '--template', EXAMPLE, '--profile', 'aws-nginx-2', '--tag', 'slim/aws-nginx:2');

  const fake = await startAwsFake({ buckets: ['aim-images'], importStepMs: 200, sealDelayMs: 100, registerDelayMs: 100 });
  const env = {
    AWS_ACCESS_KEY_ID: fake.credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: fake.credentials.secretAccessKey,
    AWS_REGION: 'eu-west-1',
    AWS_ENDPOINT_URL_EC2: fake.endpoints.ec2,
    AWS_ENDPOINT_URL_EBS: fake.endpoints.ebs,
    AWS_ENDPOINT_URL_S3: fake.endpoints.s3,
    AWS_CONFIG_FILE: join(work, 'none'),
    AWS_SHARED_CREDENTIALS_FILE: join(work, 'none'),
    AWS_EC2_METADATA_DISABLED: 'true',
  };
  const rows = [];
  let outs = 0;
  try {
    for (const [path, extra] of [
      ['ebs', ['--name', 'bench-ebs']],
      ['import-snapshot', ['--name', 'bench-import', '--via', 'import-snapshot', '--bucket', 'aim-images']],
    ]) {
      for (const [phase, ref] of [
        ['first ship', 'slim/aws-nginx:1'],
        ['re-ship', 'slim/aws-nginx:1'],
        ['update', 'slim/aws-nginx:2'],
      ]) {
        console.error(`bench aws: ${path}, ${phase} (${ref})`);
        fake.resetTraffic();
        const shipped = await aim(repo, env, 'ship', 'aws', ref, '--out', join(work, `out-${++outs}`), '--kernel', 'core/kernel:bookworm', ...extra);
        const t = fake.traffic();
        const blocks = t.ebs.actions.PutSnapshotBlock?.requests ?? 0;
        const disk = shipped.json.artifacts?.[0];
        rows.push({
          path,
          phase,
          image: ref,
          alreadyPublished: shipped.json.alreadyPublished,
          ami: shipped.json.published?.[0]?.id,
          blocks,
          s3BodyBytes: (t.s3.actions.UploadPart?.bodyBytes ?? 0) + (t.s3.actions.PutObject?.bodyBytes ?? 0),
          ebsBodyBytes: t.ebs.bodyBytes,
          wireBytesSent: t.ebs.wire.bytesIn + t.s3.wire.bytesIn + t.ec2.wire.bytesIn,
          requests: { ec2: t.ec2.requests, ebs: t.ebs.requests, s3: t.s3.requests },
          diskBytes: disk?.bytes,
          seconds: shipped.seconds,
        });
      }
    }
  } finally {
    await fake.stop();
  }
  const ebs = rows.filter((r) => r.path === 'ebs');
  const imp = rows.filter((r) => r.path === 'import-snapshot');
  const firstBlocks = ebs[0].blocks;
  const sent = (r) => r.ebsBodyBytes + r.s3BodyBytes;
  const total = (rs) => rs.reduce((n, r) => n + sent(r), 0);
  const targets = {
    reshipSendsZeroBlocks: ebs[1].blocks === 0,
    updateBelow5PercentOfFirst: ebs[2].blocks < 0.05 * firstBlocks,
    updatePercentOfFirst: Math.round((1000 * ebs[2].blocks) / firstBlocks) / 10,
    ebsFewerBytesThanVmdk: { firstShip: sent(ebs[0]) < sent(imp[0]), update: sent(ebs[2]) < sent(imp[2]), allThree: total(ebs) < total(imp) },
  };
  const fmt = (n) => (n / MiB).toFixed(1);
  const md =
    `### EC2 provider benchmark (\`npm run bench -- aws\`) (${machine().cores} cores; slim nginx of examples/aws-nginx; fake EC2/EBS/S3 on 127.0.0.1, which count every request and byte)\n\n` +
    '| path | ship | image | blocks sent (512 KiB) | bytes sent (bodies) MiB | on the wire MiB | requests EC2 / EBS / S3 | seconds |\n|---|---|---|---:|---:|---:|---|---:|\n' +
    rows.map((r) => `| ${r.path} | ${r.phase}${r.alreadyPublished ? ' (already published)' : ''} | ${r.image} | ${r.path === 'ebs' ? r.blocks : '-'} | ${fmt(sent(r))} | ${fmt(r.wireBytesSent)} | ${r.requests.ec2} / ${r.requests.ebs} / ${r.requests.s3} | ${r.seconds.toFixed(1)} |`).join('\n') +
    `\n\nTargets: re-ship sends 0 blocks: **${targets.reshipSendsZeroBlocks ? 'met' : 'missed'}** (${ebs[1].blocks}); the update sends < 5% of the first ship's blocks: **${targets.updateBelow5PercentOfFirst ? 'met' : 'missed'}** (${ebs[2].blocks} of ${firstBlocks}, ${targets.updatePercentOfFirst}%); ` +
    `the EBS path sends fewer bytes than the VMDK path: first ship ${targets.ebsFewerBytesThanVmdk.firstShip ? 'yes' : 'no'} (${fmt(sent(ebs[0]))} vs ${fmt(sent(imp[0]))} MiB), update ${targets.ebsFewerBytesThanVmdk.update ? 'yes' : 'no'} (${fmt(sent(ebs[2]))} vs ${fmt(sent(imp[2]))} MiB), the three ships together ${targets.ebsFewerBytesThanVmdk.allThree ? 'yes' : 'no'} (${fmt(total(ebs))} vs ${fmt(total(imp))} MiB).\n`;
  writeResults('aws', { machine: machine(), rows, targets }, md);
  rmSync(work, { recursive: true, force: true });
}
