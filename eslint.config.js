// Lint: typescript-eslint's recommended rules, plus Nx module boundaries. Apps may import libs
// (never another app); libs/wire and libs/runtime import nothing of ours; libs/tenancy only libs/wire.
// Inside the gateway, folders import each other only down its layers (docs/architecture.md,
// "Inside the gateway") and only through their index.ts; no import cycle anywhere.
import js from '@eslint/js';
import nx from '@nx/eslint-plugin';
import { createNodeResolver, importX } from 'eslint-plugin-import-x';
import tseslint from 'typescript-eslint';

const GATEWAY = 'apps/gateway/src';
/** Each gateway folder and the folders it may import; root errors.ts and refusal.ts are open to all. */
export const GATEWAY_LAYERS = {
  config: [],
  limits: [],
  telemetry: ['config'],
  tenants: ['config', 'telemetry'],
  backend: ['config', 'telemetry', 'limits'],
  cancel: ['backend', 'tenants', 'config', 'telemetry', 'limits'],
  session: ['cancel', 'backend', 'tenants', 'config', 'telemetry', 'limits'],
  edge: ['session', 'cancel', 'config', 'telemetry', 'limits'],
  ops: ['edge', 'session', 'cancel', 'backend', 'tenants', 'config', 'telemetry', 'limits'],
};
const FOLDERS = Object.keys(GATEWAY_LAYERS);
const ENTRY_POINTS = ['app.ts', 'main.ts'];

function gatewayZones() {
  const zones = [];
  for (const [folder, allowed] of Object.entries(GATEWAY_LAYERS)) {
    for (const other of FOLDERS) {
      if (other === folder) continue;
      zones.push(
        allowed.includes(other)
          ? {
              target: `${GATEWAY}/${folder}`,
              from: `${GATEWAY}/${other}`,
              except: ['./index.ts'],
              message: `import ${other}/ through its index.ts`,
            }
          : {
              target: `${GATEWAY}/${folder}`,
              from: `${GATEWAY}/${other}`,
              message: `${folder}/ may not import ${other}/ (layers: eslint.config.js GATEWAY_LAYERS)`,
            },
      );
    }
  }
  // The composition roots: main.ts builds on app.ts, and the package entry (index.ts) re-exports it.
  for (const entry of ENTRY_POINTS) {
    zones.push({ target: `${GATEWAY}/!(index|main).ts`, from: `${GATEWAY}/${entry}`, message: `nothing imports ${entry}` });
    for (const folder of FOLDERS)
      zones.push({ target: `${GATEWAY}/${folder}`, from: `${GATEWAY}/${entry}`, message: `nothing imports ${entry}` });
  }
  for (const folder of FOLDERS) {
    zones.push({
      target: `${GATEWAY}/*.ts`,
      from: `${GATEWAY}/${folder}`,
      except: ['./index.ts'],
      message: `import ${folder}/ through its index.ts`,
    });
  }
  return zones;
}

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
    files: ['**/*.ts'],
    plugins: { 'import-x': importX },
    settings: {
      'import-x/resolver-next': [createNodeResolver({ conditionNames: ['@tenantgate/source', 'import', 'default'] })],
      // no-cycle parses each imported file: with TypeScript's parser, or it sees no imports in them.
      'import-x/parsers': { '@typescript-eslint/parser': ['.ts'] },
      'import-x/extensions': ['.ts', '.js'],
    },
    rules: {
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
    },
  },
  {
    files: [`${GATEWAY}/**/*.ts`],
    ignores: [`${GATEWAY}/testing/**`],
    rules: { 'import-x/no-restricted-paths': ['error', { zones: gatewayZones() }] },
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
