import { execa } from 'execa';
import { randomBytes } from 'node:crypto';

const ip = (...args: string[]) => execa('ip', args);

/**
 * A lab network in namespaces the test owns, addresses from 198.18.0.0/15 only:
 * - `lab`: bridge br0 (198.18.0.1/24, the boot server's address) and the taps of the VMs;
 * - `site`: eth0 (198.18.0.2) on the bridge, where "the site's DHCP server" runs;
 * - `client`: eth0 (198.18.0.9) on the bridge, for DHCP probes and talking to the guests.
 * Nothing is created in the machine's own namespace (veth pairs are made inside the namespaces).
 */
export interface LabNetwork {
  lab: string;
  site: string;
  client: string;
  server: string;
  /** Creates a tap on the bridge for a VM. */
  addTap(name: string): Promise<string>;
  /** Deletes the namespaces (and with them every interface); idempotent. */
  remove(): Promise<void>;
}

export const LAB = { server: '198.18.0.1', site: '198.18.0.2', client: '198.18.0.9', prefix: 24, range: ['198.18.0.100', '198.18.0.150'] } as const;

export async function createLabNetwork(): Promise<LabNetwork> {
  const tag = `${process.pid}-${randomBytes(2).toString('hex')}`;
  const names = { lab: `aimpxe-lab-${tag}`, site: `aimpxe-site-${tag}`, client: `aimpxe-cli-${tag}` };
  const created: string[] = [];
  const remove = async () => {
    for (const ns of created.splice(0).reverse()) await ip('netns', 'del', ns).catch(() => undefined);
  };
  try {
    for (const ns of Object.values(names)) {
      await ip('netns', 'add', ns);
      created.push(ns);
      await ip('-n', ns, 'link', 'set', 'lo', 'up');
    }
    const { lab } = names;
    await ip('-n', lab, 'link', 'add', 'br0', 'type', 'bridge');
    await ip('-n', lab, 'addr', 'add', `${LAB.server}/${LAB.prefix}`, 'dev', 'br0');
    await ip('-n', lab, 'link', 'set', 'br0', 'up');
    for (const [peer, addr, port] of [[names.site, LAB.site, 'vsite'], [names.client, LAB.client, 'vclient']] as const) {
      await ip('-n', lab, 'link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', peer);
      await ip('-n', lab, 'link', 'set', port, 'master', 'br0', 'up');
      await ip('-n', peer, 'addr', 'add', `${addr}/${LAB.prefix}`, 'dev', 'eth0');
      await ip('-n', peer, 'link', 'set', 'eth0', 'up');
    }
    // DHCP probes broadcast from the client namespace
    await ip('-n', names.client, 'route', 'add', '255.255.255.255/32', 'dev', 'eth0');
  } catch (e) {
    await remove();
    throw e;
  }
  return {
    ...names,
    server: LAB.server,
    async addTap(name) {
      await ip('-n', names.lab, 'tuntap', 'add', name, 'mode', 'tap');
      await ip('-n', names.lab, 'link', 'set', name, 'master', 'br0', 'up');
      return name;
    },
    remove,
  };
}

/** Runs a Node.js module (its text) inside a namespace and returns its stdout. */
export async function nodeInNetns(ns: string, code: string, timeoutMs = 30_000): Promise<string> {
  const r = await execa('ip', ['netns', 'exec', ns, process.execPath, '--input-type=module', '-e', code], { timeout: timeoutMs, reject: false });
  if (r.exitCode !== 0) throw new Error(`node in ${ns} failed (${r.exitCode}): ${r.stderr}`);
  return r.stdout;
}
