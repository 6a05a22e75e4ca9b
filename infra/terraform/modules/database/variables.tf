variable "name" {
  description = "Name prefix of every resource of the deployment (lowercase letters, digits, hyphens; at most 20 characters)."
  type        = string

  validation {
    condition     = can(regex("^[a-z]([a-z0-9-]{0,18}[a-z0-9])?$", var.name)) && !strcontains(var.name, "--")
    error_message = "name must be 1-20 characters of lowercase letters, digits and single hyphens, starting with a letter and not ending with a hyphen."
  }
}

variable "vpc_id" {
  description = "VPC of the database."
  type        = string

  validation {
    condition     = can(regex("^vpc-[0-9a-f]{8,17}$", var.vpc_id))
    error_message = "vpc_id must be a VPC id such as vpc-0123456789abcdef0."
  }
}

variable "subnet_ids" {
  description = "Private subnets of the database, in at least two availability zones."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) >= 2 && alltrue([for id in var.subnet_ids : can(regex("^subnet-[0-9a-f]{8,17}$", id))])
    error_message = "subnet_ids must hold at least two subnet ids (subnet-...)."
  }
}

variable "allowed_security_group_ids" {
  description = "Security groups allowed to reach the database: the control plane's only."
  type        = list(string)

  validation {
    condition     = length(var.allowed_security_group_ids) > 0 && alltrue([for id in var.allowed_security_group_ids : can(regex("^sg-[0-9a-f]{8,17}$", id))])
    error_message = "allowed_security_group_ids must hold at least one security group id (sg-...)."
  }
}

variable "engine_version" {
  description = "PostgreSQL version: a major (16) follows RDS's default minor and its automatic minor upgrades; a full version (16.4) pins it."
  type        = string
  default     = "16"

  validation {
    condition     = can(regex("^1[4-7](\\.[0-9]+)?$", var.engine_version))
    error_message = "engine_version must be a PostgreSQL 14 to 17 version such as 16 or 16.4."
  }
}

variable "instance_class" {
  description = "Instance class. The store holds tenants and roles, read mostly on gateway cache misses: small instances do."
  type        = string
  default     = "db.t4g.medium"

  validation {
    condition     = can(regex("^db\\.[a-z0-9]+\\.[a-z0-9]+$", var.instance_class))
    error_message = "instance_class must be an RDS instance class such as db.t4g.medium."
  }
}

variable "allocated_storage" {
  description = "Initial storage in GiB (gp3)."
  type        = number
  default     = 20

  validation {
    condition     = var.allocated_storage >= 20 && var.allocated_storage <= 65536
    error_message = "allocated_storage must be from 20 to 65536 GiB."
  }
}

variable "max_allocated_storage" {
  description = "Ceiling of storage autoscaling in GiB (0 turns autoscaling off)."
  type        = number
  default     = 100

  validation {
    condition     = var.max_allocated_storage == 0 || (var.max_allocated_storage >= 20 && var.max_allocated_storage <= 65536)
    error_message = "max_allocated_storage must be 0 or from 20 to 65536 GiB."
  }
}

variable "multi_az" {
  description = "Keep a synchronous standby in another zone (automatic failover in one to two minutes; twice the instance cost)."
  type        = bool
  default     = true
}

variable "backup_retention_days" {
  description = "Days of automated backups (point-in-time recovery window)."
  type        = number
  default     = 7

  validation {
    condition     = var.backup_retention_days >= 1 && var.backup_retention_days <= 35 && floor(var.backup_retention_days) == var.backup_retention_days
    error_message = "backup_retention_days must be a whole number from 1 to 35: backups stay on."
  }
}

variable "deletion_protection" {
  description = "Refuse to delete the database (turn off, apply, then destroy)."
  type        = bool
  default     = true
}

variable "performance_insights_enabled" {
  description = "Turn on Performance Insights (7 days free; not offered on the smallest classes)."
  type        = bool
  default     = true
}

variable "database_name" {
  description = "Name of the control plane's database."
  type        = string
  default     = "tenantgate"

  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,62}$", var.database_name))
    error_message = "database_name must start with a letter and hold lowercase letters, digits and underscores (at most 63)."
  }
}

variable "username" {
  description = "Master user of the instance, used by the control plane."
  type        = string
  default     = "tenantgate"

  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,62}$", var.username)) && !contains(["postgres", "rdsadmin", "admin"], var.username)
    error_message = "username must start with a letter, hold lowercase letters, digits and underscores, and not be a reserved name."
  }
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key for storage encryption (null: the AWS-managed key)."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be null or a KMS key ARN."
  }
}

variable "secrets_kms_key_arn" {
  description = "Customer-managed KMS key for the DATABASE_URL secret (null: the AWS-managed key)."
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
