import { execa } from 'execa';
import { readFile, writeFile, chmod, mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ec2KeysScript, platformInitSteps } from '../../src/core/bootable/ec2-keys.js';
import { AIM_BUSYBOX } from '../../src/core/bootable/init-scripts.js';
import { tempDir } from '../helpers/tmp.js';

/**
 * aim's ec2 init step against an instance metadata service at 169.254.169.254 in a network
 * namespace of its own (node's HTTP server standing in for IMDSv2: PUT a token, GET with it, 401
 * without): the host's busybox runs the script as the guest's does, with its busybox and root's
 * home moved into a temporary directory.
 */

let tmp: Awaited<ReturnType<typeof tempDir>>;
beforeAll(async () => {
  tmp = await tempDir('aim-ec2-keys-');
});
afterAll(async () => tmp?.cleanup());

const IMDS = `import { createServer } from 'node:http';
const key = process.argv[2];
const seen = [];
createServer((req, res) => {
  seen.push(req.method + ' ' + req.url + (req.headers['x-aws-ec2-metadata-token'] === 'T0K3N' ? ' token' : ''));
  if (req.method === 'PUT' && req.url === '/latest/api/token' && req.headers['x-aws-ec2-metadata-token-ttl-seconds']) return res.end('T0K3N');
  if (req.headers['x-aws-ec2-metadata-token'] !== 'T0K3N') { res.statusCode = 401; return res.end(); }
  if (req.url === '/latest/meta-data/public-keys/0/openssh-key' && key !== 'none') return res.end(key + '\\n');
  res.statusCode = 404;
  res.end();
}).listen(80, '169.254.169.254');
process.on('SIGTERM', () => { console.log(JSON.stringify(seen)); process.exit(0); });
`;

/** Runs the script in a new network namespace with the metadata service (or none) in it. */
async function runStep(name: string, key: string | undefined) {
  const dir = join(tmp.dir, name);
  await mkdir(dir, { recursive: true });
  const script = ec2KeysScript().replaceAll(AIM_BUSYBOX, '/usr/bin/busybox').replace('${home:-/root}', join(dir, 'root'));
  await writeFile(join(dir, 'step'), script);
  await chmod(join(dir, 'step'), 0o755);
  await writeFile(join(dir, 'imds.mjs'), IMDS);
  const server = key === undefined ? 'true' : `${process.execPath} ${join(dir, 'imds.mjs')} '${key}' > ${join(dir, 'seen')} & s=$!; sleep 0.5`;
  const r = await execa('unshare', ['--net', 'sh', '-c', `ip link set lo up && ip addr add 169.254.169.254/32 dev lo && ${server}; timeout 90 ${join(dir, 'step')}; rc=$?; [ -n "$s" ] && kill $s && wait $s; exit $rc`], { reject: false });
  const seen = key === undefined ? [] : (JSON.parse((await readFile(join(dir, 'seen'), 'utf8')) || '[]') as string[]);
  return { ...r, dir, seen };
}

describe('ec2 init step: the SSH key from IMDSv2', () => {
  it('takes a token, reads the key with it, and adds it once to root’s authorized_keys (mode 600 in a 700 directory)', async () => {
    const key = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGFpbS10ZXN0LWtleS1ieXRlcy1hYmNkZWZnaGlq my-key-pair';
    const r = await runStep('key', key);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain(`aim: ssh key from instance metadata (IMDSv2) in ${join(r.dir, 'root')}/.ssh/authorized_keys: ${key}`);
    const file = join(r.dir, 'root', '.ssh', 'authorized_keys');
    expect(await readFile(file, 'utf8')).toBe(`${key}\n`);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await stat(join(r.dir, 'root', '.ssh'))).mode & 0o777).toBe(0o700);
    expect(r.seen).toEqual(['PUT /latest/api/token', 'GET /latest/meta-data/public-keys/0/openssh-key token']);
    // a reboot runs it again: the key is not added twice
    expect((await runStep('key', key)).exitCode).toBe(0);
    expect(await readFile(file, 'utf8')).toBe(`${key}\n`);
  });

  it('an instance without a key pair gets none, and says so', async () => {
    const r = await runStep('none', 'none');
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain('aim: the instance has no key pair: no ssh key from instance metadata');
    expect(await stat(join(r.dir, 'root')).catch(() => undefined)).toBeUndefined();
  });

  it('is a step of the ec2 platform only', () => {
    expect(platformInitSteps('ec2').map((s) => s.name)).toEqual(['ec2-keys']);
    expect(platformInitSteps('qemu')).toEqual([]);
    expect(platformInitSteps('vmware')).toEqual([]);
  });
});
