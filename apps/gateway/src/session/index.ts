// What the rest of the gateway uses of session/; everything else here is internal to it.
export { Admission } from './admission.ts';
export { type Connection, type SessionClient } from './client.ts';
export { type EdgeAuthResult, authenticateClient } from './edge-auth.ts';
export { Sessions, type SessionInfo } from './session.ts';
export { type Splice, type SpliceCloseReason, splice } from './splice.ts';
