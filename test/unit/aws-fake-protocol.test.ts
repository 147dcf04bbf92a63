import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeAwsChunked } from '../helpers/aws/aws-chunked.js';
import type { Ec2Error } from '../helpers/aws/ec2-error.js';
import { matchesFilters, wildcard } from '../helpers/aws/ec2-filters.js';
import { startImdsServer, type ImdsServer } from '../helpers/aws/imds-server.js';
import { decodeQueryInput, encodeQueryError, encodeQueryOutput } from '../helpers/aws/query-protocol.js';
import { parseSigV4 } from '../helpers/aws/sigv4.js';
import { tempDir } from '../helpers/tmp.js';

const thrown = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    return e as Ec2Error;
  }
  throw new Error('no error');
};

describe('SigV4 Authorization shape', () => {
  const date = '20260102T030405Z';
  const auth = (cred: string, extra = '') => `AWS4-HMAC-SHA256 Credential=${cred}, SignedHeaders=host;x-amz-date, Signature=${'0f'.repeat(32)}${extra}`;

  it('gives the credential scope of a well-formed header', () => {
    expect(parseSigV4({ authorization: auth('AKIDEXAMPLE/20260102/eu-west-3/ec2/aws4_request'), 'x-amz-date': date }, 'ec2')).toEqual({
      accessKeyId: 'AKIDEXAMPLE',
      date: '20260102',
      region: 'eu-west-3',
      service: 'ec2',
      signedHeaders: ['host', 'x-amz-date'],
    });
  });

  it('names what is wrong as AWS does', () => {
    expect(parseSigV4({}, 'ec2')).toMatchObject({ code: 'MissingAuthenticationToken' });
    expect(parseSigV4({ authorization: 'AWS4-HMAC-SHA1 Credential=x', 'x-amz-date': date }, 'ec2')).toMatchObject({ code: 'IncompleteSignature' });
    expect(parseSigV4({ authorization: 'AWS4-HMAC-SHA256 Credential=A/20260102/us-east-1/ec2/aws4_request, SignedHeaders=host', 'x-amz-date': date }, 'ec2')).toMatchObject({
      code: 'IncompleteSignature',
      message: expect.stringContaining("requires 'Signature' parameter"),
    });
    expect(parseSigV4({ authorization: auth('A/20260102/us-east-1/ebs/aws4_request'), 'x-amz-date': date }, 'ec2')).toMatchObject({ code: 'SignatureDoesNotMatch' });
    expect(parseSigV4({ authorization: auth('A/20260101/us-east-1/ec2/aws4_request'), 'x-amz-date': date }, 'ec2')).toMatchObject({ code: 'SignatureDoesNotMatch' });
    expect(parseSigV4({ authorization: auth('A/20260102/us-east-1/ec2/aws4_request') }, 'ec2')).toMatchObject({ code: 'IncompleteSignature' });
  });
});

describe('EC2 Query protocol from the EC2 model', () => {
  it('decodes flattened lists and nested structures into the operation\'s input', () => {
    const params = new Map(
      Object.entries({
        Action: 'RegisterImage',
        Version: '2016-11-15',
        Name: 'n',
        EnaSupport: 'true',
        'BlockDeviceMapping.2.DeviceName': '/dev/xvdb',
        'BlockDeviceMapping.2.Ebs.VolumeSize': '8',
        'BlockDeviceMapping.1.DeviceName': '/dev/xvda',
        'BlockDeviceMapping.1.Ebs.SnapshotId': 'snap-1',
        'TagSpecification.1.ResourceType': 'image',
        'TagSpecification.1.Tag.1.Key': 'k',
        'TagSpecification.1.Tag.1.Value': '',
      }),
    );
    expect(decodeQueryInput('RegisterImage', params)).toEqual({
      Name: 'n',
      EnaSupport: true,
      BlockDeviceMappings: [
        { DeviceName: '/dev/xvda', Ebs: { SnapshotId: 'snap-1' } },
        { DeviceName: '/dev/xvdb', Ebs: { VolumeSize: 8 } },
      ],
      TagSpecifications: [{ ResourceType: 'image', Tags: [{ Key: 'k', Value: '' }] }],
    });
    const filters = decodeQueryInput('DescribeImportSnapshotTasks', new Map([['Filters.1.Name', 'task-state'], ['Filters.1.Value.1', 'active'], ['ImportTaskId.1', 'import-snap-1']]));
    expect(filters).toEqual({ Filters: [{ Name: 'task-state', Values: ['active'] }], ImportTaskIds: ['import-snap-1'] });
    expect(decodeQueryInput('ImportKeyPair', new Map([['KeyName', 'k'], ['PublicKeyMaterial', Buffer.from('ssh-ed25519 AAAA').toString('base64')]]))).toEqual({ KeyName: 'k', PublicKeyMaterial: Buffer.from('ssh-ed25519 AAAA') });
  });

  it('refuses parameters the model does not have, values of the wrong type, and unknown actions', () => {
    expect(thrown(() => decodeQueryInput('DescribeImages', new Map([['Owners.1', 'self']])))).toMatchObject({ code: 'UnknownParameter', message: 'The parameter Owners is not recognized' });
    expect(thrown(() => decodeQueryInput('RegisterImage', new Map([['EnaSupport', 'yes']])))).toMatchObject({ code: 'InvalidParameterValue' });
    expect(thrown(() => decodeQueryInput('RunInstances', new Map([['MinCount', 'one']])))).toMatchObject({ code: 'InvalidParameterValue' });
    expect(thrown(() => decodeQueryInput('LaunchRocket', new Map()))).toMatchObject({ code: 'InvalidAction' });
  });

  it('encodes outputs with the model\'s XML names and <item> lists; refuses members the model lacks', () => {
    const xml = encodeQueryOutput('DescribeImages', { Images: [{ ImageId: 'ami-1', Public: false, State: 'available', Tags: [{ Key: 'a<b', Value: '&' }] }] }, 'req-1');
    expect(xml).toBe(
      '<?xml version="1.0" encoding="UTF-8"?>\n<DescribeImagesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>req-1</requestId>' +
        '<imagesSet><item><tagSet><item><key>a&lt;b</key><value>&amp;</value></item></tagSet><imageId>ami-1</imageId><imageState>available</imageState><isPublic>false</isPublic></item></imagesSet></DescribeImagesResponse>',
    );
    expect(encodeQueryOutput('DeleteSnapshot', {}, 'r')).toContain('<return>true</return>');
    expect(() => encodeQueryOutput('RegisterImage', { ImageId: 'ami-1', Bogus: 1 }, 'r')).toThrow(/Bogus is not a member/);
    expect(encodeQueryError('InvalidAMIID.NotFound', "The image id '[ami-1]' does not exist", 'r')).toBe(
      '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>InvalidAMIID.NotFound</Code><Message>The image id \'[ami-1]\' does not exist</Message></Error></Errors><RequestID>r</RequestID></Response>',
    );
  });

  it('filters with EC2 wildcards', () => {
    expect(wildcard('aim-*').test('aim-nginx 1')).toBe(true);
    expect(wildcard('a?m').test('aim')).toBe(true);
    expect(wildcard('a?m').test('aiim')).toBe(false);
    expect(wildcard('100\\*').test('100*')).toBe(true);
    expect(wildcard('100\\*').test('1000')).toBe(false);
    const tags = new Map([['aim:name', 'web']]);
    expect(matchesFilters([{ Name: 'tag:aim:name', Values: ['db', 'w*'] }, { Name: 'state', Values: ['available'] }], tags, { state: () => 'available' })).toBe(true);
    expect(matchesFilters([{ Name: 'tag:aim:name', Values: ['db'] }], tags, {})).toBe(false);
    expect(thrown(() => matchesFilters([{ Name: 'colour', Values: ['x'] }], tags, {}))).toMatchObject({ code: 'InvalidParameterValue' });
  });
});

describe('aws-chunked decoding', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  beforeAll(async () => {
    tmp = await tempDir('aim-chunked-');
  });
  afterAll(async () => tmp.cleanup());

  async function decode(parts: string[]) {
    const fh = await open(join(tmp.dir, 'out'), 'w');
    try {
      return await decodeAwsChunked((async function* () {
        for (const p of parts) yield Buffer.from(p, 'latin1');
      })(), fh);
    } finally {
      await fh.close();
    }
  }

  it('decodes signed and unsigned chunks split anywhere, with trailers', async () => {
    const body = `5;chunk-signature=${'a'.repeat(64)}\r\nhello\r\n6;chunk-signature=${'b'.repeat(64)}\r\n world\r\n0;chunk-signature=${'c'.repeat(64)}\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n`;
    const split = [body.slice(0, 3), body.slice(3, 70), body.slice(70, 71), body.slice(71)];
    const d = await decode(split);
    expect(d.length).toBe(11);
    expect(d.trailers.get('x-amz-checksum-crc32')).toBe('DUoRhQ==');
    expect(d.checksums.get('x-amz-checksum-crc32')).toBe('DUoRhQ==');
  });

  it('refuses a body that ends inside a chunk', async () => {
    await expect(decode(['a\r\nhello'])).rejects.toThrow(/middle of a chunk/);
  });
});

describe('IMDSv2 server', () => {
  let imds: ImdsServer;
  let optional: ImdsServer;
  const base = { instanceId: 'i-0123456789abcdef0', imageId: 'ami-0123456789abcdef0', instanceType: 't3.micro', region: 'eu-west-1', accountId: '123456789012', privateIp: '169.254.2.15' };
  beforeAll(async () => {
    imds = await startImdsServer({ ...base, httpTokens: 'required', publicKey: { name: 'k1', key: 'ssh-ed25519 AAAAC3Nza me@host' } });
    optional = await startImdsServer({ ...base, httpTokens: 'optional', userData: Buffer.from('#!/bin/sh\necho hi\n') });
  });
  afterAll(async () => {
    await imds.stop();
    await optional.stop();
  });

  const call = async (server: ImdsServer, method: string, path: string, headers: Record<string, string> = {}) => {
    const res = await fetch(`${server.url}${path}`, { method, headers });
    return { status: res.status, body: await res.text() };
  };

  it('gives a session token for a PUT with a TTL, and answers GETs that carry it', async () => {
    expect((await call(imds, 'GET', '/latest/meta-data/instance-id')).status).toBe(401);
    expect((await call(imds, 'PUT', '/latest/api/token')).status).toBe(400);
    expect((await call(imds, 'PUT', '/latest/api/token', { 'x-aws-ec2-metadata-token-ttl-seconds': '21601' })).status).toBe(400);
    expect((await call(imds, 'PUT', '/latest/api/token', { 'x-aws-ec2-metadata-token-ttl-seconds': '60', 'x-forwarded-for': '10.0.0.1' })).status).toBe(403);
    const token = (await call(imds, 'PUT', '/latest/api/token', { 'x-aws-ec2-metadata-token-ttl-seconds': '60' })).body;
    const t = { 'x-aws-ec2-metadata-token': token };
    expect(await call(imds, 'GET', '/latest/meta-data/instance-id', t)).toEqual({ status: 200, body: 'i-0123456789abcdef0' });
    expect(await call(imds, 'GET', '/latest/meta-data/public-keys/', t)).toEqual({ status: 200, body: '0=k1' });
    expect(await call(imds, 'GET', '/latest/meta-data/public-keys/0/', t)).toEqual({ status: 200, body: 'openssh-key' });
    expect(await call(imds, 'GET', '/latest/meta-data/public-keys/0/openssh-key', t)).toEqual({ status: 200, body: 'ssh-ed25519 AAAAC3Nza k1\n' });
    expect((await call(imds, 'GET', '/latest/meta-data/', t)).body.split('\n')).toEqual(expect.arrayContaining(['instance-id', 'placement/', 'public-keys/']));
    expect((await call(imds, 'GET', '/latest/meta-data/instance-id', { 'x-aws-ec2-metadata-token': 'forged' })).status).toBe(401);
    expect((await call(imds, 'GET', '/latest/user-data', t)).status).toBe(404);
    expect(imds.requests.filter((r) => r.status === 200 && r.token)).toHaveLength(5);
  });

  it('answers without a token when the instance allows IMDSv1', async () => {
    expect(await call(optional, 'GET', '/latest/user-data')).toEqual({ status: 200, body: '#!/bin/sh\necho hi\n' });
    expect((await call(optional, 'GET', '/latest/meta-data/public-keys/')).status).toBe(404);
    expect(JSON.parse((await call(optional, 'GET', '/latest/dynamic/instance-identity/document')).body)).toMatchObject({ instanceId: base.instanceId, region: 'eu-west-1' });
  });
});
