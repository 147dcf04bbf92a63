import { ConfigError } from '../../lib/errors.js';

const NAME = /^[a-z0-9][a-z0-9._-]*(\/[a-z0-9][a-z0-9._-]*)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

/** Validates "name:tag" (docker-style; a bare name means name:latest) and returns the full form. */
export function parseTag(ref: string): string {
  const i = ref.lastIndexOf(':');
  const name = i < 0 ? ref : ref.slice(0, i);
  const tag = i < 0 ? 'latest' : ref.slice(i + 1);
  if (!NAME.test(name) || !TAG.test(tag)) {
    throw new ConfigError(`invalid tag "${ref}"`, {
      hint: 'use name:tag with lowercase name parts separated by "/" (e.g. gold/nginx:1)',
    });
  }
  return `${name}:${tag}`;
}
