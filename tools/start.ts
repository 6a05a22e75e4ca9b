// `npm start`: the local stack (control plane + gateway with development certificates).
// The control plane is not built yet; until it is, say so plainly instead of pretending.
process.stderr.write(
  [
    'tenantgate: the local stack (control plane + gateway) is not runnable yet: the control plane is not built.',
    'The gateway runs alone with a static tenants file: `npm run gateway -- --help` lists its variables.',
    'Run `npm test` to exercise what is built.',
    '',
  ].join('\n'),
);
process.exitCode = 1;
