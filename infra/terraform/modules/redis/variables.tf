variable "name" {
  description = "Name prefix of every resource of the deployment (lowercase letters, digits, hyphens; at most 20 characters)."
  type        = string

  validation {
    condition     = can(regex("^[a-z]([a-z0-9-]{0,18}[a-z0-9])?$", var.name)) && !strcontains(var.name, "--")
    error_message = "name must be 1-20 characters of lowercase letters, digits and single hyphens, starting with a letter and not ending with a hyphen."
  }
}

variable "vpc_id" {
  description = "VPC of the replication group."
  type        = string

  validation {
    condition     = can(regex("^vpc-[0-9a-f]{8,17}$", var.vpc_id))
    error_message = "vpc_id must be a VPC id such as vpc-0123456789abcdef0."
  }
}

variable "subnet_ids" {
  description = "Private subnets of the cache nodes, in at least two availability zones (automatic failover puts the replica in another zone)."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) >= 2 && alltrue([for id in var.subnet_ids : can(regex("^subnet-[0-9a-f]{8,17}$", id))])
    error_message = "subnet_ids must hold at least two subnet ids (subnet-...)."
  }
}

variable "allowed_security_group_ids" {
  description = "Security groups allowed to reach Redis: the gateways' (routes cache, cancel keys) and the control plane's (invalidations). Nothing else."
  type        = list(string)

  validation {
    condition     = length(var.allowed_security_group_ids) > 0 && alltrue([for id in var.allowed_security_group_ids : can(regex("^sg-[0-9a-f]{8,17}$", id))])
    error_message = "allowed_security_group_ids must hold at least one security group id (sg-...)."
  }
}

variable "node_type" {
  description = "Cache node type. Routes, negative entries and cancel keys are small: memory rarely decides, network and availability do."
  type        = string
  default     = "cache.t4g.medium"

  validation {
    condition     = can(regex("^cache\\.[a-z0-9]+\\.[a-z0-9]+$", var.node_type))
    error_message = "node_type must be an ElastiCache node type such as cache.t4g.medium or cache.r7g.large."
  }
}

variable "engine_version" {
  description = "Redis OSS engine version (7.x: TLS, AUTH token and pub/sub, which the invalidations use)."
  type        = string
  default     = "7.1"

  validation {
    condition     = contains(["7.0", "7.1"], var.engine_version)
    error_message = "engine_version must be 7.0 or 7.1."
  }
}

variable "node_count" {
  description = "Nodes of the replication group: one primary and node_count - 1 replicas, spread over the subnets' zones."
  type        = number
  default     = 2

  validation {
    condition     = var.node_count >= 2 && var.node_count <= 6 && floor(var.node_count) == var.node_count
    error_message = "node_count must be a whole number from 2 (automatic failover needs a replica) to 6."
  }
}

variable "snapshot_retention_days" {
  description = "Days of daily snapshots kept (0 disables them: the cache can be rebuilt from the control plane)."
  type        = number
  default     = 1

  validation {
    condition     = var.snapshot_retention_days >= 0 && var.snapshot_retention_days <= 35 && floor(var.snapshot_retention_days) == var.snapshot_retention_days
    error_message = "snapshot_retention_days must be a whole number from 0 to 35."
  }
}

variable "maintenance_window" {
  description = "Weekly maintenance window (UTC, ddd:hh24:mi-ddd:hh24:mi)."
  type        = string
  default     = "sun:04:30-sun:05:30"

  validation {
    condition     = can(regex("^(mon|tue|wed|thu|fri|sat|sun):[0-2][0-9]:[0-5][0-9]-(mon|tue|wed|thu|fri|sat|sun):[0-2][0-9]:[0-5][0-9]$", var.maintenance_window))
    error_message = "maintenance_window must look like sun:04:30-sun:05:30."
  }
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key for encryption at rest (null: the AWS-managed key)."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be null or a KMS key ARN."
  }
}

variable "secrets_kms_key_arn" {
  description = "Customer-managed KMS key for the REDIS_URL secret (null: the AWS-managed key)."
  type        = string
  default     = null

  validation {
    condition     = var.secrets_kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:", var.secrets_kms_key_arn))
    error_message = "secrets_kms_key_arn must be null or a KMS key ARN."
  }
}

variable "apply_immediately" {
  description = "Apply modifications at once instead of in the next maintenance window."
  type        = bool
  default     = false
}
