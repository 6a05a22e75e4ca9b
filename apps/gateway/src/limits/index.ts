// What the rest of the gateway uses of limits/; everything else here is internal to it.
export { type BucketLimit, type TokenBucket, fullBucket, isFull, takeToken } from './token-bucket.ts';
export { AddressBuckets } from './address-buckets.ts';
export { PendingConnections, type PendingSlot } from './pending.ts';
export {
  FLEET_LEASE_MS,
  RedisFleetLimits,
  type FleetDecision,
  type FleetLease,
  type FleetLimits,
  type TenantLimits,
} from './fleet-limits.ts';
