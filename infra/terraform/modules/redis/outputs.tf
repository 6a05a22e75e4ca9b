output "primary_endpoint_address" {
  description = "Host name of the primary (follows failovers)."
  value       = aws_elasticache_replication_group.this.primary_endpoint_address
}

output "reader_endpoint_address" {
  description = "Host name spreading reads over the replicas."
  value       = aws_elasticache_replication_group.this.reader_endpoint_address
}

output "port" {
  description = "Redis port."
  value       = local.port
}

output "security_group_id" {
  description = "Security group of the cache nodes."
  value       = aws_security_group.redis.id
}

output "redis_url_secret_arn" {
  description = "Secret holding REDIS_URL for the gateways and the control plane."
  value       = aws_secretsmanager_secret_version.redis_url.arn
}

output "replication_group_id" {
  description = "Id of the replication group."
  value       = aws_elasticache_replication_group.this.id
}
