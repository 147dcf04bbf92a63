import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { vmware, vmwareOptions, type VmwareObserved } from '../../providers/vmware/index.js';
import { flagUsage, gatherOptions, journalledOptions, optionSpecs, validateOptions } from '../../src/core/ship/options.js';
import { givenOptions, resolveProviderOptions } from '../../src/core/ship/ship-image.js';
import { AimError, ConfigError } from '../../src/lib/errors.js';
import { redact } from '../../src/lib/redact.js';

const schema = z.object({
  region: z.string().regex(/^[a-z]{2}-[a-z]+-\d$/, 'a region such as eu-west-1').meta({ description: 'region to publish in', env: 'FAKE_REGION' }),
  'boot-mode': z.enum(['uefi', 'legacy-bios', 'uefi-preferred']).default('uefi').describe('firmware'),
  tpm: z.boolean().default(false).describe('TPM 2.0'),
  parallel: z.number().int().min(1).max(64).default(8).describe('uploads at once'),
  tag: z.array(z.string().regex(/^[^=]+=.*$/, 'k=v')).default([]).meta({ description: 'tag k=v', env: 'FAKE_TAGS' }),
  token: z.string().optional().meta({ description: 'API token', env: 'FAKE_TOKEN', secret: true }),
});

const catchError = (f: () => unknown): AimError => {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(AimError);
    return e as AimError;
  }
  throw new Error('did not throw');
};

describe('provider options from one zod schema', () => {
  it('reads names, kinds, choices, lists, defaults, env and secrecy off the schema', () => {
    expect(optionSpecs(schema)).toEqual([
      { name: 'region', description: 'region to publish in', type: 'string', multiple: false, required: true, env: 'FAKE_REGION', secret: false },
      { name: 'boot-mode', description: 'firmware', type: 'enum', choices: ['uefi', 'legacy-bios', 'uefi-preferred'], multiple: false, required: false, default: 'uefi', secret: false },
      { name: 'tpm', description: 'TPM 2.0', type: 'boolean', multiple: false, required: false, default: false, secret: false },
      { name: 'parallel', description: 'uploads at once', type: 'number', multiple: false, required: false, default: 8, secret: false },
      { name: 'tag', description: 'tag k=v', type: 'string', multiple: true, required: false, default: [], env: 'FAKE_TAGS', secret: false },
      { name: 'token', description: 'API token', type: 'string', multiple: false, required: false, env: 'FAKE_TOKEN', secret: true },
    ]);
    expect(optionSpecs(schema).map(flagUsage)).toEqual(['--region VALUE', '--boot-mode uefi|legacy-bios|uefi-preferred', '--tpm', '--parallel N', '--tag VALUE', '--token VALUE']);
    expect(() => optionSpecs(z.object({ Bad_Name: z.string() }))).toThrow(/"Bad_Name" must be lower-case/);
  });

  it('takes flags, then the environment, then a template, then defaults; converts strings to the option’s kind', () => {
    const given = givenOptions(['tag=a=1', 'tag=b=2', 'parallel=4'], { tpm: true, region: undefined });
    const input = gatherOptions('fake', schema, given, { FAKE_REGION: 'eu-west-1', FAKE_TAGS: 'x=1' }, { region: 'us-east-1', 'boot-mode': 'legacy-bios' });
    expect(input).toEqual({ region: 'eu-west-1', 'boot-mode': 'legacy-bios', tpm: true, parallel: 4, tag: ['a=1', 'b=2'] });
    expect(validateOptions('fake', schema, input)).toEqual({ region: 'eu-west-1', 'boot-mode': 'legacy-bios', tpm: true, parallel: 4, tag: ['a=1', 'b=2'] });
    // a list from the environment is comma-separated; the template is below it
    expect(gatherOptions('fake', schema, {}, { FAKE_TAGS: 'x=1, y=2' }, { tag: ['t=0'] }).tag).toEqual(['x=1', 'y=2']);
    expect(validateOptions('fake', schema, { region: 'eu-west-1' })).toEqual({ region: 'eu-west-1', 'boot-mode': 'uefi', tpm: false, parallel: 8, tag: [] });
    expect(gatherOptions('fake', schema, { tpm: 'no' }, {}).tpm).toBe(false);
  });

  it('a list declared commaSeparated also splits each flag value on commas; other lists keep theirs', () => {
    const lists = z.object({
      regions: z.array(z.string()).default([]).meta({ description: 'regions', commaSeparated: true }),
      note: z.array(z.string()).default([]).describe('notes'),
    });
    expect(optionSpecs(lists).map((o) => [o.name, o.commaSeparated ?? false])).toEqual([
      ['regions', true],
      ['note', false],
    ]);
    const input = gatherOptions('fake', lists, { regions: ['us-east-1,eu-central-1', ' ap-south-1 '], note: ['a,b'] }, {});
    expect(input).toEqual({ regions: ['us-east-1', 'eu-central-1', 'ap-south-1'], note: ['a,b'] });
  });

  it('reports every problem at once: unknown names, kinds, schema rules, a missing required option', () => {
    const e = catchError(() => gatherOptions('fake', schema, { colour: 'red', tpm: 'maybe', parallel: 'lots', region: true }, {}));
    expect(e).toBeInstanceOf(ConfigError);
    expect(e.message).toBe('provider fake: unknown option "colour"; region: needs a value; tpm: "maybe" is not true or false; parallel: "lots" is not a number');
    expect(e.hint).toBe('options of fake: --region VALUE, --boot-mode uefi|legacy-bios|uefi-preferred, --tpm, --parallel N, --tag VALUE, --token VALUE');
    const v = catchError(() => validateOptions('fake', schema, { 'boot-mode': 'bios', parallel: 100, tag: ['ok=1', 'broken'] }));
    expect(v.message).toBe('provider fake: region is required (or FAKE_REGION); boot-mode: Invalid option: expected one of "uefi"|"legacy-bios"|"uefi-preferred"; parallel: Too big: expected number to be <=64; tag.1: k=v');
    expect(catchError(() => validateOptions('fake', schema, { region: 'mars' })).message).toBe('provider fake: region: a region such as eu-west-1');
  });

  it('keeps secret options out of the journal and out of every output', () => {
    const input = gatherOptions('fake', schema, {}, { FAKE_REGION: 'eu-west-1', FAKE_TOKEN: 'tok-5q7-never-shown' });
    validateOptions('fake', schema, input);
    expect(journalledOptions(schema, input)).toEqual({ region: 'eu-west-1' });
    expect(redact('the token is tok-5q7-never-shown')).toBe('the token is ***');
  });

  it('vmware declares its options in zod: --memory and --name are checked before any work', () => {
    expect(optionSpecs(vmwareOptions).map((o) => o.name)).toEqual(['datastore-url', 'name', 'insecure', 'overwrite', 'kernel', 'memory']);
    const provider = vmware as unknown as Parameters<typeof resolveProviderOptions>[0];
    expect(resolveProviderOptions(provider, { memory: '1024', insecure: true }, { AIM_KERNEL: 'core/kernel:x' }).options).toEqual({ insecure: true, overwrite: false, kernel: 'core/kernel:x', memory: 1024 });
    expect(catchError(() => resolveProviderOptions(provider, { memory: '2' }, {})).message).toBe('provider vmware: memory: the VM needs at least 4 MiB');
    expect(catchError(() => resolveProviderOptions(provider, { name: '../x' }, {})).message).toBe('provider vmware: name: "../x" must be letters, digits, ".", "_" and "-"');
    expect(catchError(() => resolveProviderOptions(provider, { 'datastore-url': 'https://esxi.test/ui/x' }, {})).message).toMatch(/datastore-url: --datastore-url path must start with \/folder/);
  });
});

describe('vmware plan', () => {
  const url = 'https://esxi.test/folder/aim?dcPath=ha-datacenter&dsName=datastore1';
  const options = validateOptions('vmware', vmwareOptions, { 'datastore-url': url });
  const image = { id: 'a'.repeat(64), ref: 'slim/web:1' };
  const observed = (remote: VmwareObserved['remote']): VmwareObserved => ({ name: 'slim-web-1', remote, localBuilds: [] });
  const absent = { remote: { exists: false } };

  it('is pure: the same inputs give the same plan, and it reads nothing (the host does not exist)', () => {
    const seen = observed({ 'slim-web-1.vmdk': absent, 'slim-web-1.ova': absent });
    const before = JSON.stringify(seen);
    const a = vmware.plan(image, seen, options);
    const b = vmware.plan(image, structuredClone(seen), structuredClone(options));
    expect(a).toEqual(b);
    expect(JSON.stringify(seen)).toBe(before);
    expect(JSON.parse(JSON.stringify(a))).toEqual(a);
    expect(a.steps.map((s) => `${s.action} ${s.subject}`)).toEqual(['build vmdk → vmdk/', 'build ova → ova/', 'upload slim-web-1.vmdk', 'upload slim-web-1.ova']);
    expect(a.uploads.map((u) => u.destination)).toEqual([
      'https://esxi.test/folder/aim/slim-web-1.vmdk?dcPath=ha-datacenter&dsName=datastore1',
      'https://esxi.test/folder/aim/slim-web-1.ova?dcPath=ha-datacenter&dsName=datastore1',
    ]);
    expect(a.upToDate).toBeUndefined();
  });

  it('refuses files it did not put there unless --overwrite, and is up to date when the journal’s files are in place', () => {
    const foreign = observed({ 'slim-web-1.vmdk': absent, 'slim-web-1.ova': { remote: { exists: true, bytes: 9 } } });
    expect(() => vmware.plan(image, foreign, options)).toThrow(/\[datastore1\] aim\/slim-web-1\.ova already exists on the datastore/);
    const replacing = vmware.plan(image, foreign, { ...options, overwrite: true });
    expect(replacing.uploads.map((u) => u.replaces)).toEqual(['nothing', 'foreign']);
    const ours = (bytes: number, remoteBytes = bytes) => ({ remote: { exists: true, bytes: remoteBytes }, journalled: { state: 'created' as const, bytes, sha256: 'f'.repeat(64) } });
    const done = vmware.plan(image, observed({ 'slim-web-1.vmdk': ours(100), 'slim-web-1.ova': ours(200) }), options);
    expect(done).toMatchObject({ upToDate: true, steps: [], published: [{ location: '[datastore1] aim/slim-web-1.vmdk', bytes: 100 }, { location: '[datastore1] aim/slim-web-1.ova', bytes: 200 }] });
    // the OVA on the datastore is shorter than the journal says (cut short): it is uploaded again
    const half = vmware.plan(image, observed({ 'slim-web-1.vmdk': ours(100), 'slim-web-1.ova': ours(200, 50) }), options);
    expect(half.upToDate).toBeUndefined();
    expect(half.steps.filter((s) => s.action !== 'build').map((s) => `${s.action} ${s.subject}`)).toEqual(['keep slim-web-1.vmdk', 'upload slim-web-1.ova']);
  });
});
