locals {
  port = 6379
}

# Alphanumeric: valid as an ElastiCache AUTH token and safe inside a URL without escaping.
resource "random_password" "auth_token" {
  length  = 64
  special = false
}

resource "aws_elasticache_subnet_group" "this" {
  name        = "${var.name}-redis"
  description = "tenantgate Redis"
  subnet_ids  = var.subnet_ids
}

resource "aws_security_group" "redis" {
  name        = "${var.name}-redis"
  description = "tenantgate Redis: gateways and control plane only"
  vpc_id      = var.vpc_id

  tags = {
    Name = "${var.name}-redis"
  }
}

resource "aws_vpc_security_group_ingress_rule" "clients" {
  count = length(var.allowed_security_group_ids)

  security_group_id            = aws_security_group.redis.id
  description                  = "Redis from tenantgate services"
  referenced_security_group_id = var.allowed_security_group_ids[count.index]
  ip_protocol                  = "tcp"
  from_port                    = local.port
  to_port                      = local.port
}

# Cluster mode off: one shard is plenty for routes and cancel keys, and pub/sub (invalidations)
# and multi-key commands stay simple. A replica in another zone takes over automatically.
resource "aws_elasticache_replication_group" "this" {
  replication_group_id       = "${var.name}-redis"
  description                = "tenantgate routes cache, invalidations and cancel keys"
  engine                     = "redis"
  engine_version             = var.engine_version
  parameter_group_name       = "default.redis7"
  node_type                  = var.node_type
  num_cache_clusters         = var.node_count
  port                       = local.port
  subnet_group_name          = aws_elasticache_subnet_group.this.name
  security_group_ids         = [aws_security_group.redis.id]
  automatic_failover_enabled = true
  multi_az_enabled           = true
  transit_encryption_enabled = true
  at_rest_encryption_enabled = true
  kms_key_id                 = var.kms_key_arn
  auth_token                 = random_password.auth_token.result
  snapshot_retention_limit   = var.snapshot_retention_days
  snapshot_window            = "03:00-04:00"
  maintenance_window         = var.maintenance_window
  auto_minor_version_upgrade = true
  apply_immediately          = var.apply_immediately
}

resource "aws_secretsmanager_secret" "redis_url" {
  name_prefix             = "${var.name}/redis-url-"
  description             = "REDIS_URL of the tenantgate gateways and control plane (rediss:// with the AUTH token)"
  kms_key_id              = var.secrets_kms_key_arn
  recovery_window_in_days = 7
}

resource "aws_secretsmanager_secret_version" "redis_url" {
  secret_id     = aws_secretsmanager_secret.redis_url.id
  secret_string = "rediss://:${random_password.auth_token.result}@${aws_elasticache_replication_group.this.primary_endpoint_address}:${local.port}"
}
