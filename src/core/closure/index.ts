/**
 * The static closure: the safety net of slimming. From traced paths and entrypoints, everything
 * the kernel, ld.so and libc will need, every path with the reasons it is kept.
 */
export { computeClosure } from './compute.js';
export { explainPath, describe as describeReason } from './explain.js';
export type { Explanation, ExplainOptions } from './explain.js';
export { compileGlob, matchesGlob } from './glob.js';
export type { Glob } from './glob.js';
export { parseLdSoConfText, expandSearchElement, defaultLibraryDirs, multiarchTuples } from './ld-config.js';
export { parseShebang, envCommand } from './shebang.js';
export { parseNsswitch, nssModuleSoname } from './nsswitch.js';
export { MAX_REASONS_PER_KIND, MOUNT_POINTS, DEFAULT_PATH } from './types.js';
export type { Closure, ClosureInput, ClosureRules, DroppedPath, Reason, ReasonKind } from './types.js';
