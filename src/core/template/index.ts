export { ImageTemplateSchema, ProbeSchema, templateJsonSchema, type ImageTemplate, type TemplateProbe } from './schema.js';
export { loadTemplate, parseTemplate, templateCopyIns, formatIssues, type LoadedTemplate } from './load.js';
export { resolveSettings, requireSetting, templateProbe, DEFAULT_DURATION, DEFAULT_PROBE_TIMEOUT, DEFAULT_READY_TIMEOUT, type Recorded, type Settings, type SettingFlags } from './settings.js';
