variable "name" {
  description = "Name prefix of every resource of the deployment (lowercase letters, digits, hyphens; at most 20 characters)."
  type        = string

  validation {
    condition     = can(regex("^[a-z]([a-z0-9-]{0,18}[a-z0-9])?$", var.name)) && !strcontains(var.name, "--")
    error_message = "name must be 1-20 characters of lowercase letters, digits and single hyphens, starting with a letter and not ending with a hyphen."
  }
}

variable "vpc_id" {
  description = "VPC of the internal load balancer and the tasks."
  type        = string

  validation {
    condition     = can(regex("^vpc-[0-9a-f]{8,17}$", var.vpc_id))
    error_message = "vpc_id must be a VPC id such as vpc-0123456789abcdef0."
  }
}

variable "private_subnet_ids" {
  description = "Private subnets of the internal load balancer and the tasks, in at least two availability zones."
  type        = list(string)

  validation {
    condition     = length(var.private_subnet_ids) >= 2 && alltrue([for id in var.private_subnet_ids : can(regex("^subnet-[0-9a-f]{8,17}$", id))])
    error_message = "private_subnet_ids must hold at least two subnet ids (subnet-...)."
  }
}

variable "cluster_arn" {
  description = "ARN of the ECS cluster that runs the service (arn:<partition>:ecs:<region>:<account>:cluster/<name>)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:ecs:[a-z0-9-]+:[0-9]{12}:cluster/[A-Za-z0-9_-]+$", var.cluster_arn))
    error_message = "cluster_arn must be an ECS cluster ARN such as arn:aws:ecs:eu-west-1:123456789012:cluster/tenantgate."
  }
}

variable "image" {
  description = "Container image of the control plane (registry/repository:tag or @digest)."
  type        = string

  validation {
    condition     = can(regex("^[^\\s]+(:[A-Za-z0-9._-]+|@sha256:[0-9a-f]{64})$", var.image))
    error_message = "image must name a tag or a digest, for example 123456789012.dkr.ecr.eu-west-1.amazonaws.com/tenantgate-control-plane:1.4.2."
  }
}

variable "cpu_architecture" {
  description = "CPU architecture of the tasks: X86_64, or ARM64 when the image is built for it."
  type        = string
  default     = "X86_64"

  validation {
    condition     = contains(["X86_64", "ARM64"], var.cpu_architecture)
    error_message = "cpu_architecture must be X86_64 or ARM64."
  }
}

variable "cpu" {
  description = "CPU units of one task (1024 = one vCPU)."
  type        = number
  default     = 512

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096], var.cpu)
    error_message = "cpu must be 256, 512, 1024, 2048 or 4096."
  }
}

variable "memory" {
  description = "Memory of one task in MiB; it must be a size Fargate allows for the chosen cpu."
  type        = number
  default     = 1024

  validation {
    condition     = var.memory >= 512 && var.memory <= 30720 && var.memory % 512 == 0
    error_message = "memory must be a multiple of 512 MiB from 512 to 30720."
  }
}

variable "min_count" {
  description = "Fewest control-plane tasks (also the count at creation). Gateways serve cached routes when it is down, but new tenants and cache misses need it."
  type        = number
  default     = 2

  validation {
    condition     = var.min_count >= 1 && floor(var.min_count) == var.min_count
    error_message = "min_count must be a whole number of at least 1."
  }
}

variable "max_count" {
  description = "Most control-plane tasks autoscaling (on CPU) may run."
  type        = number
  default     = 4

  validation {
    condition     = var.max_count >= 1 && var.max_count <= 100 && floor(var.max_count) == var.max_count
    error_message = "max_count must be a whole number from 1 to 100 (and not below min_count)."
  }
}

variable "container_port" {
  description = "Port the control plane listens on inside the task (CONTROL_PLANE_LISTEN)."
  type        = number
  default     = 8080

  validation {
    condition     = var.container_port >= 1024 && var.container_port <= 65535 && floor(var.container_port) == var.container_port
    error_message = "container_port must be a whole number from 1024 to 65535."
  }
}

variable "enable_https" {
  description = "Serve the internal load balancer over HTTPS (443) with certificate_arn; false serves plain HTTP on 80 inside the VPC, tokens included, and is meant for trials only."
  type        = bool
  default     = true
}

variable "certificate_arn" {
  description = "ACM certificate of the internal load balancer's host name (required when enable_https is true)."
  type        = string
  default     = null

  validation {
    condition     = var.certificate_arn == null || can(regex("^arn:aws[a-z-]*:acm:", var.certificate_arn))
    error_message = "certificate_arn must be null or an ACM certificate ARN."
  }
}

variable "client_security_group_ids" {
  description = "Security groups allowed to call the control plane through its load balancer: the gateways'."
  type        = list(string)

  validation {
    condition     = alltrue([for id in var.client_security_group_ids : can(regex("^sg-[0-9a-f]{8,17}$", id))])
    error_message = "client_security_group_ids must hold security group ids (sg-...)."
  }
}

variable "admin_cidrs" {
  description = "IPv4 ranges of operators (VPN, bastion, CI) allowed to use the admin API through the load balancer. Private ranges only: the load balancer is internal."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.admin_cidrs : can(cidrnetmask(c)) && !endswith(c, "/0")])
    error_message = "admin_cidrs must hold IPv4 CIDRs narrower than /0."
  }
}

variable "database_url_secret_arn" {
  description = "Secrets Manager secret holding DATABASE_URL."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:secretsmanager:", var.database_url_secret_arn))
    error_message = "database_url_secret_arn must be a Secrets Manager secret ARN."
  }
}

variable "redis_url_secret_arn" {
  description = "Secrets Manager secret holding REDIS_URL (the control plane publishes invalidations there)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:secretsmanager:", var.redis_url_secret_arn))
    error_message = "redis_url_secret_arn must be a Secrets Manager secret ARN."
  }
}

variable "secrets_kms_key_arn" {
  description = "Customer-managed KMS key for the token secrets the module creates (null: the AWS-managed key). The execution role may decrypt with it."
  type        = string
  default     = null

  validation {
    condition     = var.secrets_kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:", var.secrets_kms_key_arn))
    error_message = "secrets_kms_key_arn must be null or a KMS key ARN."
  }
}

variable "log_level" {
  description = "LOG_LEVEL of the control plane (a pino level)."
  type        = string
  default     = "info"

  validation {
    condition     = contains(["fatal", "error", "warn", "info", "debug", "trace", "silent"], var.log_level)
    error_message = "log_level must be one of fatal, error, warn, info, debug, trace, silent."
  }
}

variable "log_retention_days" {
  description = "Retention of the control plane's CloudWatch log group, in days."
  type        = number
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a retention CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, ... 3653)."
  }
}

variable "extra_environment" {
  description = "Further environment variables of the control-plane container, such as NODE_EXTRA_CA_CERTS for the RDS certificate bundle or OTEL_* settings."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k in keys(var.extra_environment) : can(regex("^[A-Z_][A-Z0-9_]*$", k))])
    error_message = "extra_environment keys must be upper-case environment variable names."
  }
}

variable "alarm_actions" {
  description = "ARNs (SNS topics) notified when an alarm fires and when it clears."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for a in var.alarm_actions : can(regex("^arn:aws[a-z-]*:", a))])
    error_message = "alarm_actions must hold ARNs."
  }
}

variable "deletion_protection" {
  description = "Protect the internal load balancer against deletion."
  type        = bool
  default     = true
}
