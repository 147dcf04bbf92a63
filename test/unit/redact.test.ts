import { describe, expect, it } from 'vitest';
import { AimError, ToolFailedError } from '../../src/lib/errors.js';
import { addCredentials, addSecret, addSecretsFromEnv, redact, redactDeep } from '../../src/lib/redact.js';

// markers no real output contains
const USER = 'mk-user-7f3a';
const PASSWORD = 'Mk-Pass/word+7f3a=';
const basic = Buffer.from(`${USER}:${PASSWORD}`).toString('base64');

const forms = (s: string) => [s, encodeURIComponent(s), Buffer.from(s).toString('base64'), Buffer.from(s).toString('base64url'), JSON.stringify(s).slice(1, -1)];

describe('redact', () => {
  it('hides a registered password in clear, URL-encoded, base64 and JSON-escaped form, and user:password as basic auth sends it', () => {
    addCredentials(USER, PASSWORD);
    for (const form of [...forms(PASSWORD), basic, basic.replace(/=+$/, ''), encodeURIComponent(basic)]) {
      const out = redact(`before ${form} after`);
      expect(out, form).toBe('before *** after');
    }
    // the user alone is not a secret
    expect(redact(`user ${USER}`)).toBe(`user ${USER}`);
  });

  it('finds credentials of the environment by variable name, with their user', () => {
    addSecretsFromEnv({ MY_SERVICE_USER: 'svc-0b1e', MY_SERVICE_PASSWORD: 'pw-0b1e-long', AWS_SECRET_ACCESS_KEY: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY', SOME_FLAG_TOKEN: 'true', PORT_KEY: '8080' });
    expect(redact('x pw-0b1e-long y')).toBe('x *** y');
    expect(redact(Buffer.from('svc-0b1e:pw-0b1e-long').toString('base64'))).toBe('***');
    expect(redact('key wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY')).toBe('key ***');
    // settings are not secrets: "true" and numbers stay readable
    expect(redact('enabled: true, port 8080')).toBe('enabled: true, port 8080');
  });

  it('hides credentials it was never told about: URL user info, Authorization headers, AWS keys, password fields', () => {
    expect(redact('GET https://admin:hunter2-x@esxi.lan/folder/a?dcPath=d')).toBe('GET https://***@esxi.lan/folder/a?dcPath=d');
    expect(redact('postgres://u:p%40ss@db:5432/aim')).toBe('postgres://***@db:5432/aim');
    // a password with characters that should have been percent-encoded
    expect(redact("'https://u:pa/ss?x+y=@127.0.0.1:1/folder/a'")).toBe("'https://***@127.0.0.1:1/folder/a'");
    // no user information: unchanged
    for (const url of ['file:///usr/lib/node_modules/@oclif/core/x.js', 'https://registry.example/@scope/pkg', 'http://127.0.0.1:8080/x']) expect(redact(url)).toBe(url);
    expect(redact('Authorization: Basic dW5rbm93bjpjcmVkcw==\r\nHost: x')).toBe('Authorization: Basic ***\r\nHost: x');
    expect(redact('{"authorization":"Bearer eyJhbGciOi.x.y","ok":1}')).toBe('{"authorization":"Bearer ***","ok":1}');
    expect(redact('Authorization: AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20240101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=' + 'a'.repeat(64))).not.toMatch(/AKIAIOSFODNN7EXAMPLE|aaaaaaaa/);
    expect(redact('https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F2024&X-Amz-Signature=' + 'b'.repeat(64) + '&X-Amz-Security-Token=FQoGZXIvYXdz')).not.toMatch(/AKIAIOSFODNN7EXAMPLE|bbbbbbbb|FQoGZXIvYXdz/);
    expect(redact('aws_secret_access_key = abcdEFGHijklMNOPqrstUVWXyz0123456789ABCD')).toBe('aws_secret_access_key = ***');
    expect(redact('access key AKIAIOSFODNN7EXAMPLE')).toBe('access key ***');
    expect(redact('password=open-sesame&user=x')).toBe('password=***&user=x');
    expect(redact('{"client_secret": "zz-top-secret"}')).toBe('{"client_secret": "***"}');
    expect(redact('AIM_VMWARE_PASSWORD=whatever aim ship')).toBe('AIM_VMWARE_PASSWORD=*** aim ship');
  });

  it('leaves ordinary output alone and is idempotent', () => {
    for (const plain of [
      'talking to http://127.0.0.1:8080 failed: connect ECONNREFUSED 127.0.0.1:8080; hint: set AIM_VMWARE_PASSWORD instead',
      // files named like credentials are paths, not secrets
      '{"/etc/passwd": {"kept": true}, "/run/secret": 1}',
      '- /etc/passwd: kept (user nginx); /usr/bin/passwd=setuid; PWD=/work',
    ]) {
      expect(redact(plain)).toBe(plain);
    }
    const once = redact(`https://a:b@h/ ${PASSWORD} Authorization: Basic ${basic}`);
    expect(redact(once)).toBe(once);
  });

  it('covers errors where they are made, and JSON documents deeply', () => {
    addSecret('tok-0c2d-long');
    const e = new AimError('E_X', 'HTTP 500 (echo: tok-0c2d-long)', 1, { hint: 'retry with tok-0c2d-long' });
    expect(e.message).not.toContain('tok-0c2d-long');
    expect(JSON.stringify(e.toJSON())).not.toContain('tok-0c2d-long');
    const tool = new ToolFailedError(['curl', '-u', `${USER}:${PASSWORD}`], 22, `auth ${basic} refused`);
    expect(JSON.stringify({ m: tool.message, c: tool.command, t: tool.stderrTail })).not.toMatch(new RegExp([PASSWORD, basic].map((s) => s.replace(/[+/=]/g, '\\$&')).join('|')));
    expect(redactDeep({ a: [{ url: 'https://u:pw@h/' }, 3, null], when: new Date(0) })).toEqual({ a: [{ url: 'https://***@h/' }, 3, null], when: '1970-01-01T00:00:00.000Z' });
  });
});
