// What the rest of the gateway uses of backend/; everything else here is internal to it.
export { ClientCertificateStore, scramMockKey } from './client-certificates.ts';
export { type BackendAuth, type BackendSession, type OpenedBackend, abandonBackend, openBackend, startBackendSession } from './connect.ts';
export { takeIdleWatch } from './idle.ts';
export { checkTimeout } from './phase.ts';
export { BackendTls, backendAddress } from './tenant-tls.ts';
export { BackendTlsContexts, type BackendTlsDefaults, type BackendTlsIdentity, type TlsSessionCache } from './tls.ts';
