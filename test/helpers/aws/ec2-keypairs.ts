import { createHash } from 'node:crypto';
import { newId, type AwsState, type KeyPairRecord } from './aws-state.js';
import { Ec2Error, missingParameter } from './ec2-error.js';
import { matchesFilters, type Filter } from './ec2-filters.js';
import type { Ec2Handler } from './ec2-server.js';
import { tagSet, tagSpecifications, type TagSpecificationInput } from './ec2-tags.js';

/** Key pairs (ImportKeyPair, DescribeKeyPairs, DeleteKeyPair): RunInstances' KeyName, served by IMDS as public-keys/0/openssh-key. */

const KEY_TYPES: Record<string, string> = { 'ssh-rsa': 'rsa', 'ssh-ed25519': 'ed25519' };

export function keyPairActions(state: AwsState): Record<string, Ec2Handler> {
  const byName = (region: string, name: string) => [...state.keyPairs.values()].find((k) => k.region === region && k.name === name);
  const describe = (k: KeyPairRecord, withKey: boolean) => ({
    KeyPairId: k.id,
    KeyName: k.name,
    KeyFingerprint: k.fingerprint,
    KeyType: k.keyType,
    CreateTime: k.createTime,
    ...(withKey ? { PublicKey: k.publicKey } : {}),
    Tags: tagSet(k.tags) ?? [],
  });

  return {
    ImportKeyPair({ input, region }) {
      const name = input.KeyName as string | undefined;
      if (!name) throw missingParameter('KeyName');
      if (!input.PublicKeyMaterial) throw missingParameter('PublicKeyMaterial');
      const text = (input.PublicKeyMaterial as Buffer).toString('utf8').trim();
      const [type, blob] = text.split(/\s+/);
      const keyType = type === undefined ? undefined : KEY_TYPES[type];
      if (!keyType || !blob || !/^[A-Za-z0-9+/]+=*$/.test(blob)) throw new Ec2Error('InvalidKey.Format', 'Key is not in valid OpenSSH public key format');
      if (byName(region, name)) throw new Ec2Error('InvalidKeyPair.Duplicate', `The keypair '${name}' already exists.`);
      const tags = tagSpecifications(input.TagSpecifications as TagSpecificationInput[] | undefined, ['key-pair']);
      const md5 = createHash('md5').update(Buffer.from(blob, 'base64')).digest('hex');
      const k: KeyPairRecord = {
        id: newId('key'),
        region,
        name,
        publicKey: text,
        fingerprint: md5.match(/../g)!.join(':'),
        keyType,
        createTime: new Date(),
        tags: tags.get('key-pair') ?? new Map(),
      };
      state.keyPairs.set(k.id, k);
      return { KeyFingerprint: k.fingerprint, KeyName: k.name, KeyPairId: k.id, Tags: tagSet(k.tags) };
    },

    DescribeKeyPairs({ input, region }) {
      const names = (input.KeyNames ?? []) as string[];
      const ids = (input.KeyPairIds ?? []) as string[];
      for (const n of names) if (!byName(region, n)) throw new Ec2Error('InvalidKeyPair.NotFound', `The key pair '${n}' does not exist`);
      for (const id of ids) if (state.keyPairs.get(id)?.region !== region) throw new Ec2Error('InvalidKeyPair.NotFound', `The key pair ID '${id}' does not exist`);
      const keys = [...state.keyPairs.values()].filter(
        (k) =>
          k.region === region &&
          (!names.length || names.includes(k.name)) &&
          (!ids.length || ids.includes(k.id)) &&
          matchesFilters(input.Filters as Filter[] | undefined, k.tags, { 'key-name': () => k.name, 'key-pair-id': () => k.id, fingerprint: () => k.fingerprint }),
      );
      return { KeyPairs: keys.map((k) => describe(k, input.IncludePublicKey === true)) };
    },

    DeleteKeyPair({ input, region }) {
      // deleting a key pair that is not there succeeds, as in EC2
      const k = input.KeyPairId ? state.keyPairs.get(input.KeyPairId) : input.KeyName ? byName(region, input.KeyName) : undefined;
      if (!input.KeyPairId && !input.KeyName) throw missingParameter('KeyName');
      if (k && k.region === region) state.keyPairs.delete(k.id);
      return { Return: true, ...(k ? { KeyPairId: k.id } : {}) };
    },
  };
}
