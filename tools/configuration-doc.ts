// Writes docs/configuration.md from the variable tables of both apps (libs/runtime), the same
// tables `--help` and the configuration checks are made from:
//   node --conditions=@tenantgate/source tools/configuration-doc.ts
// test/tools/configuration-doc.test.ts fails when the committed file differs from what this writes.
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CONTROL_PLANE_HELP, GATEWAY_HELP, markdownReference } from '@tenantgate/runtime';

export const CONFIGURATION_DOC = fileURLToPath(new URL('../docs/configuration.md', import.meta.url));

export function configurationDoc(): string {
  return `# Configuration

Both apps are configured by environment variables only. Certificate variables take a file path
or the PEM text itself. A bad value, an unreadable file or a port in use stops start-up with one
line naming the variable and what it expects; unknown \`GATEWAY_*\` variables stop the gateway's
start-up as probable typos. \`npm run gateway -- --help\` and \`npm run control-plane -- --help\`
print the same tables. This file is written by \`tools/configuration-doc.ts\` from
\`libs/runtime\`; do not edit it by hand.

## Gateway (\`npm run gateway\`)

${markdownReference(GATEWAY_HELP)}

## Control plane (\`npm run control-plane\`)

${markdownReference(CONTROL_PLANE_HELP)}
`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) writeFileSync(CONFIGURATION_DOC, configurationDoc());
