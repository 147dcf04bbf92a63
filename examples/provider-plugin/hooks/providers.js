// The `aim:providers` hook: aim runs it (config.runHook) and ships through what it returns,
// a Provider or a list of them. Plain JavaScript, so the plugin needs no build step.
import { localdir } from '../providers/localdir.js';

export default async function providers() {
  return [localdir];
}
