// Lint: typescript-eslint's recommended rules, plus Nx module boundaries. Apps may import libs
// (never another app); libs/wire and libs/runtime import nothing of ours; libs/tenancy only libs/wire.
import js from '@eslint/js';
import nx from '@nx/eslint-plugin';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['**/node_modules/**', '**/dist/**', '**/out-tsc/**', '**/.data/**', '.nx/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts', '**/*.js'],
    plugins: { '@nx': nx },
    languageOptions: {
      globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly', URL: 'readonly' },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-console': 'error',
      '@nx/enforce-module-boundaries': [
        'error',
        {
          allow: [],
          enforceBuildableLibDependency: false,
          depConstraints: [
            { sourceTag: 'scope:wire', onlyDependOnLibsWithTags: ['scope:wire'] },
            { sourceTag: 'scope:tenancy', onlyDependOnLibsWithTags: ['scope:wire'] },
            { sourceTag: 'scope:runtime', onlyDependOnLibsWithTags: ['scope:runtime'] },
            { sourceTag: 'type:lib', onlyDependOnLibsWithTags: ['type:lib'] },
            { sourceTag: 'type:app', onlyDependOnLibsWithTags: ['type:lib', 'type:testing'] },
            { sourceTag: 'type:testing', onlyDependOnLibsWithTags: ['type:lib'] },
            { sourceTag: 'type:e2e', onlyDependOnLibsWithTags: ['type:lib', 'type:app', 'type:testing'] },
            { sourceTag: 'type:bench', onlyDependOnLibsWithTags: ['type:lib', 'type:app', 'type:testing'] },
          ],
        },
      ],
    },
  },
  {
    // Tools and the CLI entry points may print to the terminal.
    files: ['tools/**', '**/src/main.ts', 'bench/**'],
    rules: { 'no-console': 'off' },
  },
  {
    // The Node version check runs before anything else, as CommonJS on any Node.
    files: ['**/*.cjs'],
    languageOptions: { sourceType: 'commonjs', globals: { require: 'readonly', process: 'readonly' } },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
);
