// docs/configuration.md must be what tools/configuration-doc.ts writes from the variable tables,
// so the reference never drifts from what the apps accept.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { CONFIGURATION_DOC, configurationDoc } from './configuration-doc.ts';
import { CONTROL_PLANE_VARIABLES, GATEWAY_VARIABLES } from '@tenantgate/runtime';

test('docs/configuration.md is generated from the variable tables of both apps', () => {
  assert.equal(
    readFileSync(CONFIGURATION_DOC, 'utf8'),
    configurationDoc(),
    'docs/configuration.md is stale: run node --conditions=@tenantgate/source tools/configuration-doc.ts',
  );
  const text = configurationDoc();
  for (const variable of [...GATEWAY_VARIABLES, ...CONTROL_PLANE_VARIABLES])
    assert.ok(text.includes(`| \`${variable.name}\` |`), variable.name);
});
