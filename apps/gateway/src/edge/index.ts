// What the rest of the gateway uses of edge/; everything else here is internal to it.
export { type ClientStartup } from './handshake.ts';
export { type Listener, type ListenerConfig, startListener } from './listener.ts';
export { PROXY_V2_SIGNATURE, type ProxyHeaderMode, readProxyHeader } from './proxy-protocol.ts';
export { type CertificateInput, TlsContexts } from './tls-contexts.ts';
