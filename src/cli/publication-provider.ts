import type { Interfaces } from '@oclif/core';
import type { PublicationRecord } from '../core/model/publication.js';
import { providerMissing } from '../core/ship/publications.js';
import type { AnyProvider } from '../core/ship/provider.js';
import type { Reporter } from '../lib/reporter.js';
import { allProviders } from './plugin-providers.js';

/** The provider that made a publication, if it is installed (built in or from a plugin). */
export async function publicationProvider(config: Interfaces.Config, p: PublicationRecord, reporter: Reporter, required: boolean): Promise<AnyProvider | undefined> {
  const entry = (await allProviders(config, reporter)).find((e) => e.name === p.provider);
  if (entry) return entry.load();
  if (required) throw providerMissing(p);
  return undefined;
}
