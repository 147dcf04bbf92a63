import { execa } from 'execa';
import { createHash, randomBytes } from 'node:crypto';
import { readFile, truncate, writeFile, open } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixVmdkCid } from '../../src/core/build/disk-formats.js';
import { extractOvaDisk, writeOva } from '../../src/core/build/ova.js';
import { ovfDescriptor } from '../../src/core/build/ovf.js';
import { indexTarFile } from '../../src/core/import/tar-reader.js';
import { tempDir } from '../helpers/tmp.js';

let tmp: Awaited<ReturnType<typeof tempDir>>;
let vmdk: string;
const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/** One XPath over an XML file with a real parser (libxml2); namespaces matched by local name. */
async function xpath(file: string, expr: string): Promise<string> {
  return (await execa('xmllint', ['--xpath', expr, file])).stdout.trim();
}
const el = (...names: string[]) => names.map((n) => `/*[local-name()="${n}"]`).join('');
const attr = (n: string) => `/@*[local-name()="${n}"]`;

beforeAll(async () => {
  tmp = await tempDir('aim-ova-');
  // a 64 MiB disk with 3 MiB of data at two places: the VMDK holds fewer bytes than its capacity
  const raw = join(tmp.dir, 'disk.raw');
  await writeFile(raw, '');
  await truncate(raw, 64 << 20);
  const f = await open(raw, 'r+');
  await f.write(randomBytes(2 << 20), 0, 2 << 20, 0);
  await f.write(randomBytes(1 << 20), 0, 1 << 20, 40 << 20);
  await f.close();
  vmdk = join(tmp.dir, 'disk.vmdk');
  await execa('qemu-img', ['convert', '-f', 'raw', '-O', 'vmdk', '-o', 'subformat=streamOptimized', raw, vmdk]);
});
afterAll(async () => tmp.cleanup());

describe('OVF descriptor', () => {
  it('is well-formed XML with the sections and attributes vSphere needs', async () => {
    const file = join(tmp.dir, 'd.ovf');
    await writeFile(file, ovfDescriptor({ name: 'web<1>', diskFile: 'web-disk1.vmdk', diskFileBytes: 1234, capacityBytes: 64 << 20, populatedBytes: 3 << 20, memoryMiB: 768, cpus: 1 }));
    await execa('xmllint', ['--noout', file]); // throws when not well-formed
    const env = el('Envelope');
    expect(await xpath(file, `namespace-uri(${env})`)).toBe('http://schemas.dmtf.org/ovf/envelope/1');
    expect(await xpath(file, `string(${env}${el('References', 'File')}${attr('href')})`)).toBe('web-disk1.vmdk');
    expect(await xpath(file, `string(${env}${el('References', 'File')}${attr('size')})`)).toBe('1234');
    const disk = `${env}${el('DiskSection', 'Disk')}`;
    expect(await xpath(file, `string(${disk}${attr('capacity')})`)).toBe(String(64 << 20));
    expect(await xpath(file, `string(${disk}${attr('populatedSize')})`)).toBe(String(3 << 20));
    expect(await xpath(file, `string(${disk}${attr('fileRef')})`)).toBe('file1');
    expect(await xpath(file, `string(${disk}${attr('format')})`)).toBe('http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized');
    const vs = `${env}${el('VirtualSystem')}`;
    expect(await xpath(file, `string(${vs}${el('Name')})`)).toBe('web<1>');
    expect(await xpath(file, `string(${vs}${el('OperatingSystemSection')}${attr('osType')})`)).toMatch(/^other(5x)?Linux64Guest$/);
    const hw = `${vs}${el('VirtualHardwareSection')}`;
    expect(await xpath(file, `string(${hw}/*[local-name()="Config"][@*[local-name()="key"]="firmware"]${attr('value')})`)).toBe('efi');
    const item = (type: number, field: string) => xpath(file, `string(${hw}/*[local-name()="Item"][*[local-name()="ResourceType"]="${type}"]/*[local-name()="${field}"])`);
    expect(await item(3, 'VirtualQuantity')).toBe('1');
    expect(await item(4, 'VirtualQuantity')).toBe('768');
    expect(await item(6, 'ResourceSubType')).toBe('VirtualSCSI');
    expect(await item(17, 'HostResource')).toBe('ovf:/disk/vmdisk1');
    expect(await item(17, 'Parent')).toBe(await item(6, 'InstanceID'));
    expect(await item(10, 'ResourceSubType')).toBe('VmxNet3');
    expect(await item(10, 'Connection')).toBe(await xpath(file, `string(${env}${el('NetworkSection', 'Network')}${attr('name')})`));
  });
});

describe('OVA', () => {
  it('is a ustar archive: descriptor first, then the SHA256 manifest, then the VMDK; byte-identical when written again', async () => {
    const one = join(tmp.dir, 'one.ova');
    const { ovf, manifest } = await writeOva({ vmdk, out: one, name: 'web', memoryMiB: 512, mtime: 1_700_000_000 });
    const { members } = await indexTarFile(one);
    expect(members.map((m) => m.name.toString())).toEqual(['web.ovf', 'web.mf', 'web-disk1.vmdk']);
    const bytes = await readFile(one);
    for (const m of members) {
      expect(bytes.subarray(m.headerOffset + 257, m.headerOffset + 263).toString('latin1')).toBe('ustar\0');
      expect(m).toMatchObject({ mode: 0o644, uid: 0, gid: 0, mtime: 1_700_000_000 });
    }
    const content = (i: number) => bytes.subarray(members[i]!.dataOffset, members[i]!.dataOffset + members[i]!.dataSize);
    const disk = await readFile(vmdk);
    expect(content(0).toString()).toBe(ovf);
    expect(content(2).equals(disk)).toBe(true);
    expect(content(1).toString()).toBe(`SHA256(web.ovf)= ${sha(ovf)}\nSHA256(web-disk1.vmdk)= ${sha(disk)}\n`);
    expect(manifest).toBe(content(1).toString());
    // the descriptor tells the truth about the disk it carries
    expect(ovf).toContain(`ovf:href="web-disk1.vmdk" ovf:id="file1" ovf:size="${disk.length}"`);
    expect(ovf).toContain(`ovf:capacity="${64 << 20}"`);
    expect(ovf).toContain(`ovf:populatedSize="${3 << 20}"`);
    // GNU tar reads it as an ordinary archive
    expect((await execa('tar', ['-tf', one])).stdout.split('\n')).toEqual(['web.ovf', 'web.mf', 'web-disk1.vmdk']);

    const two = join(tmp.dir, 'two.ova');
    await writeOva({ vmdk, out: two, name: 'web', memoryMiB: 512, mtime: 1_700_000_000 });
    expect(sha(await readFile(two))).toBe(sha(bytes));

    const extracted = await extractOvaDisk(one, tmp.dir);
    expect(extracted).toBe(join(tmp.dir, 'web-disk1.vmdk'));
    expect(sha(await readFile(extracted))).toBe(sha(disk));
  });

  it('refuses a VMDK that is not stream-optimized, and never overwrites an existing file', async () => {
    const flat = join(tmp.dir, 'flat.vmdk');
    await execa('qemu-img', ['create', '-f', 'vmdk', flat, '16M']);
    await expect(writeOva({ vmdk: flat, out: join(tmp.dir, 'flat.ova'), name: 'x', memoryMiB: 512, mtime: 0 })).rejects.toMatchObject({ code: 'E_NOT_STREAM_OPTIMIZED', exitCode: 4 });
    await writeFile(join(tmp.dir, 'taken.ova'), 'mine');
    await expect(writeOva({ vmdk, out: join(tmp.dir, 'taken.ova'), name: 'x', memoryMiB: 512, mtime: 0 })).rejects.toThrow(/EEXIST/);
    expect(await readFile(join(tmp.dir, 'taken.ova'), 'utf8')).toBe('mine');
  });
});

describe('VMDK content id', () => {
  it('is replaced by one derived from the image id whatever qemu-img wrote (its CID is unpadded hex: 1 to 8 digits)', async () => {
    const withCid = async (name: string, cid: string) => {
      const copy = join(tmp.dir, name);
      const bytes = await readFile(vmdk);
      const text = bytes.subarray(512, 512 + 20 * 512).toString('latin1');
      const end = text.indexOf('\0');
      const replaced = text.slice(0, end).replace(/\nCID=[0-9a-f]+\n/, `\nCID=${cid}\n`);
      const area = Buffer.alloc(20 * 512);
      area.write(replaced, 'latin1');
      area.copy(bytes, 512);
      await writeFile(copy, bytes);
      return copy;
    };
    const short = await withCid('short.vmdk', 'a3f');
    const long = await withCid('long.vmdk', 'fedcba98');
    expect((await readFile(short)).includes('\nCID=a3f\n')).toBe(true);
    for (const f of [short, long]) await fixVmdkCid(f, 'b'.repeat(64));
    const a = await readFile(short);
    expect(sha(a)).toBe(sha(await readFile(long)));
    expect(a.subarray(512, 1024).toString('latin1')).toMatch(/\nCID=[0-9a-f]{8}\nparentCID=ffffffff\n/);
    const info = JSON.parse((await execa('qemu-img', ['info', '--output=json', short])).stdout) as { format: string; 'format-specific': { data: { cid: number } } };
    expect(info.format).toBe('vmdk');
    expect(info['format-specific'].data.cid.toString(16).padStart(8, '0')).toBe(/\nCID=([0-9a-f]{8})\n/.exec(a.toString('latin1'))![1]);
    await execa('qemu-img', ['check', short]);
  });
});
