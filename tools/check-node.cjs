// Runs first in every npm script, before any .ts file loads: an older Node cannot strip types
// and would stop with ERR_UNKNOWN_FILE_EXTENSION, which does not say what to do. CommonJS and
// old syntax only, so that any Node that can start can run it. The version needed is the
// `engines` field of the root package.json.
'use strict';
const { engines } = require('../package.json');

const [needMajor, needMinor] = /(\d+)\.(\d+)/.exec(engines.node).slice(1).map(Number);
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < needMajor || (major === needMajor && minor < needMinor)) {
  process.stderr.write(`tenantgate needs Node ${needMajor}.${needMinor} or newer (found ${process.version})\n`);
  process.exit(1);
}
