/**
 * `aim/provider`: the public API for provider plugins (and aim's built-in providers). Import
 * everything a provider needs from here, never from aim's src/ or dist/ paths:
 *
 *   import { defineProvider, z, ProviderError } from 'aim/provider';
 *
 *   export const myCloud = defineProvider({
 *     name: 'mycloud',
 *     summary: '…',
 *     options: z.object({ region: z.string().meta({ description: 'region', env: 'MYCLOUD_REGION' }) }),
 *     target: (o) => o.region,
 *     async observe(target, ctx) { … },      // read remote state (find target.key's tag)
 *     plan(image, observed, options) { … },  // pure
 *     async apply(plan, ctx) { … },          // journal each resource before creating it
 *     async remove(resource, ctx) { … },
 *   });
 *
 * `z` is aim's own zod 4: declare the options with it so that aim reads their help, flags,
 * environment variables and validation from the same schema.
 */
import type { OptionsSchema } from '../core/ship/options.js';
import type { Provider, ProviderPlan } from '../core/ship/provider.js';

export { z } from 'zod';
export type {
  AnyProvider,
  EarlierResource,
  ApplyContext,
  ApplyResult,
  Journal,
  JournalResource,
  NewResource,
  OptionsSchema,
  PlanStep,
  Provider,
  ProviderBuildOptions,
  ProviderContext,
  ProviderPlan,
  Published,
  RemoveContext,
  ResourceState,
  ShipImage,
  ShipTarget,
} from '../core/ship/provider.js';
export type { OptionSpec } from '../core/ship/options.js';
export type { Artifact, BuildFormat, BuildResult } from '../core/build/types.js';
export type { Platform } from '../core/bootable/platforms.js';
export type { AimEvent, Reporter } from '../lib/reporter.js';
export { AimError, ConfigError, ExitCode, InterruptedError, ProviderError } from '../lib/errors.js';
export { optionSpecs } from '../core/ship/options.js';
export { idempotencyKey } from '../core/ship/journal.js';

/**
 * Returns the provider unchanged; its point is the types: the options' type is inferred from the
 * zod schema and flows into target, observe, plan, apply and remove.
 */
export function defineProvider<S extends OptionsSchema, Observed, Plan extends ProviderPlan>(provider: Provider<S, Observed, Plan>): Provider<S, Observed, Plan> {
  return provider;
}
