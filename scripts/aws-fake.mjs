#!/usr/bin/env node
// The fake AWS of the tests (test/helpers/aws: EC2 Query and EBS direct servers, s3rver, RunInstances
// booting QEMU) on 127.0.0.1, for trying `aim ship aws` without an AWS account:
//   node scripts/aws-fake.mjs [--bucket NAME]...
// prints the environment to export (credentials and the endpoints) and serves until Ctrl-C, when it
// stops every server and QEMU and removes its state. Its state lives in memory and a temporary
// directory: AMIs, snapshots and objects are gone once it stops.
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** The fake AWS is TypeScript under test/: compile it (and what it imports) with tsc into `out` and load it. */
export async function loadAwsFake(out) {
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  const files = ['test/helpers/aws/aws-fake.ts', 'test/helpers/aws/s3rver.d.ts'].map((f) => join(root, f));
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  execFileSync(process.execPath, [tsc, '--outDir', out, '--rootDir', root, '--module', 'NodeNext', '--moduleResolution', 'NodeNext', '--target', 'ES2022', '--skipLibCheck', '--esModuleInterop', '--resolveJsonModule', '--types', 'node', '--strict', ...files], { stdio: 'inherit', cwd: root });
  writeFileSync(join(out, 'package.json'), '{"type":"module"}\n');
  // the compiled files import the SDK and s3rver: resolve them from the project's node_modules
  symlinkSync(join(root, 'node_modules'), join(out, 'node_modules'));
  return import(pathToFileURL(join(out, 'test', 'helpers', 'aws', 'aws-fake.js')).href);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  // the SDK's notice that its 2027 releases need Node 22 (aim supports Node 20.19+), as aim does
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const args = process.argv.slice(2);
  const buckets = args.flatMap((a, i) => (args[i - 1] === '--bucket' ? [a] : []));
  const { startAwsFake } = await loadAwsFake(join(root, '.cache', 'aws-fake'));
  const fake = await startAwsFake({ buckets: buckets.length ? buckets : ['aim-images'], instances: { forwardPorts: [22, 80] } });
  const env = {
    AWS_ACCESS_KEY_ID: fake.credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: fake.credentials.secretAccessKey,
    AWS_REGION: 'eu-west-1',
    AWS_ENDPOINT_URL: fake.endpoint,
  };
  console.log(Object.entries(env).map(([k, v]) => `export ${k}=${v}`).join('\n'));
  console.error(`fake AWS on ${fake.endpoint} (EC2 ${fake.endpoints.ec2}, EBS ${fake.endpoints.ebs}, S3 ${fake.endpoints.s3}; buckets: ${(buckets.length ? buckets : ['aim-images']).join(', ')}); Ctrl-C stops it`);
  const stop = async () => {
    await fake.stop();
    process.exit(0);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
