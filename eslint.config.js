import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/** Later blocks replace a rule's patterns for their files, so each repeats this one. */
const DOWN = { group: ['**/providers/**', '**/providers/index.js', '**/commands/**', '**/cli/**'], message: 'core, lib and the public API never import providers/, commands or the CLI: the CLI injects built-in providers' };

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'bench/results/**', 'coverage/**', '.cache/**', 'examples/*/app/**'] }, // examples' apps run inside images (Debian's nodejs, CommonJS), not as part of aim
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-console': 'error',
    },
  },
  {
    // Arrows point down: core and lib never import providers/, commands or the CLI (the CLI injects providers).
    files: ['src/core/**/*.ts', 'src/lib/**/*.ts', 'src/api/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [DOWN] }] },
  },
  {
    // Arrows point one way: core never imports the QEMU runner (src/run), which sits above build.
    files: ['src/core/**/*.ts'],
    ignores: ['src/core/bootable/**'],
    rules: { 'no-restricted-imports': ['error', { patterns: [DOWN, { group: ['**/run/*'], message: 'src/run (the QEMU runner) sits above core: core never imports it' }] }] },
  },
  {
    // The bootable assembly sits below build: build and the runner import it, never the reverse.
    files: ['src/core/bootable/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [DOWN, { group: ['**/run/*', '**/build/*', '**/boot/*', '**/ship/*'], message: 'core/bootable sits below build and the runner: it never imports them' }] }],
    },
  },
  {
    files: ['**/*.mjs', '**/*.js'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly', Buffer: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', setInterval: 'readonly', clearInterval: 'readonly' } },
  },
  {
    files: ['test/**/*.ts', 'bench/**', 'scripts/**'],
    rules: { 'no-console': 'off' },
  },
);
