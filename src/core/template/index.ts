export { ImageTemplateSchema, ProbeSchema, templateJsonSchema, type ImageTemplate } from './schema.js';
export { loadTemplate, parseTemplate, templateCopyIns, formatIssues, type LoadedTemplate } from './load.js';
export { resolveSettings, requireSetting, DEFAULT_DURATION, DEFAULT_PROBE_TIMEOUT, type Settings, type SettingFlags } from './settings.js';
