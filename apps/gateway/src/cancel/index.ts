// What the rest of the gateway uses of cancel/; everything else here is internal to it.
export {
  ClusterCancelKeyStore,
  ClusterMessage,
  type ClusterReply,
  type ClusterRequest,
  type WorkerChannel,
  isClusterMessage,
} from './cluster-store.ts';
export { CancelForwarding } from './forwarding.ts';
export {
  type CancelKey,
  type CancelKeyStore,
  CancelRegistry,
  CancelStoreUnavailable,
  type CancelTarget,
  type ClientCancel,
  MemoryCancelKeyStore,
} from './registry.ts';
export { RedisCancelKeyStore } from './redis-store.ts';
