// What the rest of the gateway uses of ops/; everything else here is internal to it.
export { type AdminServer, type AdminSessions, adminProxyProtocol, startAdminServer } from './admin.ts';
export { runPrimary } from './workers.ts';
export { DRAINING, READY, ReadinessMonitor, readinessMonitor, type NotReadyReason, type ReadinessState } from './readiness.ts';
export { CertificateFiles } from './certificate-files.ts';
export { TerminationListener } from './termination.ts';
export { answerSessionRequests } from './worker-sessions.ts';
