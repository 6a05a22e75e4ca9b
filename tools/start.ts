// `npm start`: the local stack (control plane + gateway with development certificates).
// The gateway's data path and the control plane are not built yet; until they are, say so
// plainly instead of pretending to run something.
process.stderr.write(
  [
    'tenantgate: the local stack is not runnable yet.',
    'Built so far: libs/wire (protocol, SCRAM), libs/tenancy (tenant schema), the gateway',
    'configuration and admin server, and the test fixtures. Run `npm test` to exercise them.',
    '',
  ].join('\n'),
);
process.exitCode = 1;
