import * as ec2Model from '@aws-sdk/client-ec2';
import { NormalizedSchema } from '@smithy/core/schema';
import { Ec2Error } from './ec2-error.js';

/**
 * The EC2 Query protocol, driven by the EC2 API model that @aws-sdk/client-ec2 carries (its
 * operation schemas): request parameters (`BlockDeviceMapping.1.Ebs.SnapshotId=…`) become the
 * operation's input structure, and an output structure becomes the XML the reference shows
 * (`<imagesSet><item>…</item></imagesSet>`). Parameter names follow the model's ec2QueryName, else
 * its capitalized xmlName, else the member name; every list is flattened as `Name.N`.
 */

export const EC2_API_VERSION = '2016-11-15';
export const EC2_XMLNS = `http://ec2.amazonaws.com/doc/${EC2_API_VERSION}/`;

type Ref = unknown;

function operation(action: string): { input: NormalizedSchema; output: NormalizedSchema } | undefined {
  const op = (ec2Model as unknown as Record<string, unknown>)[`${action}$`];
  if (!Array.isArray(op) || op[0] !== 9) return undefined;
  const deref = (r: Ref) => (typeof r === 'function' ? (r as () => Ref)() : r);
  return { input: NormalizedSchema.of(deref(op[4]) as never), output: NormalizedSchema.of(deref(op[5]) as never) };
}

/** Whether the EC2 model knows an action of this name. */
export function isEc2Action(action: string): boolean {
  return operation(action) !== undefined;
}

function queryName(memberName: string, member: NormalizedSchema): string {
  const t = member.getMergedTraits() as { ec2QueryName?: string; xmlName?: string };
  if (t.ec2QueryName) return t.ec2QueryName;
  if (t.xmlName) return t.xmlName[0]!.toUpperCase() + t.xmlName.slice(1);
  return memberName[0]!.toUpperCase() + memberName.slice(1);
}

/**
 * Decodes flat Query parameters into the action's input structure (member names as the SDK uses
 * them). Throws UnknownParameter for any parameter the model does not have, and
 * InvalidParameterValue for a value of the wrong type.
 */
export function decodeQueryInput(action: string, params: ReadonlyMap<string, string>): Record<string, unknown> {
  const op = operation(action);
  if (!op) throw new Ec2Error('InvalidAction', `The action ${action} is not valid for this web service.`);
  const used = new Set(['Action', 'Version']);
  const value = decodeStruct(op.input, '', params, used) ?? {};
  for (const key of params.keys()) {
    if (!used.has(key)) throw new Ec2Error('UnknownParameter', `The parameter ${key.split('.')[0]} is not recognized`);
  }
  return value;
}

function decodeStruct(schema: NormalizedSchema, prefix: string, params: ReadonlyMap<string, string>, used: Set<string>): Record<string, unknown> | undefined {
  const out: Record<string, unknown> = {};
  let any = false;
  for (const [name, member] of schema.structIterator()) {
    const v = decodeMember(member, `${prefix}${queryName(name, member)}`, params, used);
    if (v !== undefined) {
      out[name] = v;
      any = true;
    }
  }
  return any ? out : undefined;
}

function decodeMember(schema: NormalizedSchema, key: string, params: ReadonlyMap<string, string>, used: Set<string>): unknown {
  if (schema.isListSchema()) {
    const indexes = new Set<number>();
    const re = new RegExp(`^${key.replace(/\./g, '\\.')}\\.(\\d+)(\\.|$)`);
    for (const k of params.keys()) {
      const m = re.exec(k);
      if (m) indexes.add(Number(m[1]));
    }
    if (indexes.size === 0) return undefined;
    const item = schema.getValueSchema();
    return [...indexes].sort((a, b) => a - b).map((i) => decodeMember(item, `${key}.${i}`, params, used));
  }
  if (schema.isStructSchema()) return decodeStruct(schema, `${key}.`, params, used);
  if (schema.isMapSchema()) {
    // EC2 has almost no maps; none the fake serves. Refuse rather than guess their encoding.
    if ([...params.keys()].some((k) => k.startsWith(`${key}.`))) throw new Ec2Error('UnknownParameter', `The parameter ${key} is not recognized`);
    return undefined;
  }
  const raw = params.get(key);
  if (raw === undefined) return undefined;
  used.add(key);
  if (schema.isBooleanSchema()) {
    if (raw !== 'true' && raw !== 'false') throw new Ec2Error('InvalidParameterValue', `Invalid value '${raw}' for ${key}. Expected a boolean.`);
    return raw === 'true';
  }
  if (schema.isNumericSchema() || schema.isBigIntegerSchema() || schema.isBigDecimalSchema()) {
    const n = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(n)) throw new Ec2Error('InvalidParameterValue', `Invalid value '${raw}' for ${key}. Expected a number.`);
    return n;
  }
  if (schema.isTimestampSchema()) {
    const d = new Date(raw);
    if (Number.isNaN(d.getTime())) throw new Ec2Error('InvalidParameterValue', `Invalid value '${raw}' for ${key}. Expected a timestamp.`);
    return d;
  }
  if (schema.isBlobSchema()) return Buffer.from(raw, 'base64');
  return raw;
}

const escapeXml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** The XML body of a successful response: `<ActionResponse>` with the request id and the output's members. */
export function encodeQueryOutput(action: string, result: Record<string, unknown>, requestId: string): string {
  const op = operation(action);
  if (!op) throw new Error(`no EC2 model for ${action}`);
  // operations without output members (CreateTags, DeleteSnapshot…) still answer <return>true</return>
  const body = op.output.isStructSchema() ? encodeMembers(op.output, result) : '<return>true</return>';
  return `<?xml version="1.0" encoding="UTF-8"?>\n<${action}Response xmlns="${EC2_XMLNS}"><requestId>${requestId}</requestId>${body}</${action}Response>`;
}

function encodeMembers(schema: NormalizedSchema, value: Record<string, unknown>): string {
  let xml = '';
  for (const [name, member] of schema.structIterator()) {
    const v = value[name];
    if (v === undefined || v === null) continue;
    const tag = (member.getMergedTraits() as { xmlName?: string }).xmlName ?? name;
    xml += `<${tag}>${encodeValue(member, v)}</${tag}>`;
  }
  for (const name of Object.keys(value)) {
    if (!schema.getMemberSchemas()[name]) throw new Error(`${name} is not a member of ${schema.getName()} in the EC2 model`);
  }
  return xml;
}

function encodeValue(schema: NormalizedSchema, v: unknown): string {
  if (schema.isListSchema()) {
    const item = schema.getValueSchema();
    const tag = (item.getMergedTraits() as { xmlName?: string }).xmlName ?? 'member';
    return (v as unknown[]).map((x) => `<${tag}>${encodeValue(item, x)}</${tag}>`).join('');
  }
  if (schema.isStructSchema()) return encodeMembers(schema, v as Record<string, unknown>);
  if (v instanceof Date) return v.toISOString();
  if (Buffer.isBuffer(v)) return v.toString('base64');
  return escapeXml(String(v));
}

/** The Query protocol's error document. */
export function encodeQueryError(code: string, message: string, requestId: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>${escapeXml(code)}</Code><Message>${escapeXml(message)}</Message></Error></Errors><RequestID>${requestId}</RequestID></Response>`;
}
