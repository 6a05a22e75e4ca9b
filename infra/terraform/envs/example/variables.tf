variable "region" {
  description = "AWS region of the deployment."
  type        = string
  default     = "eu-west-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must be an AWS region such as eu-west-1."
  }
}

variable "name" {
  description = "Name prefix of every resource (lowercase letters, digits, hyphens; at most 20 characters)."
  type        = string
  default     = "tenantgate"

  validation {
    condition     = can(regex("^[a-z]([a-z0-9-]{0,18}[a-z0-9])?$", var.name)) && !strcontains(var.name, "--")
    error_message = "name must be 1-20 characters of lowercase letters, digits and single hyphens, starting with a letter and not ending with a hyphen."
  }
}

variable "domain_name" {
  description = "Domain of the public hosted zone: tenants get <tenant>.db.<domain_name>, the control plane control-plane.<domain_name>."
  type        = string

  validation {
    condition     = can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]{2,63}$", var.domain_name))
    error_message = "domain_name must be a lowercase domain name such as example.com."
  }
}

variable "zone_id" {
  description = "Id of the public Route 53 hosted zone of domain_name."
  type        = string

  validation {
    condition     = can(regex("^Z[A-Z0-9]{1,31}$", var.zone_id))
    error_message = "zone_id must be a Route 53 hosted zone id such as Z0123456789ABCDEFGHIJ."
  }
}

variable "gateway_image" {
  description = "Image of the gateway (repository:tag or @digest)."
  type        = string

  validation {
    condition     = can(regex("^[^\\s]+(:[A-Za-z0-9._-]+|@sha256:[0-9a-f]{64})$", var.gateway_image))
    error_message = "gateway_image must name a tag or a digest."
  }
}

variable "control_plane_image" {
  description = "Image of the control plane (repository:tag or @digest)."
  type        = string

  validation {
    condition     = can(regex("^[^\\s]+(:[A-Za-z0-9._-]+|@sha256:[0-9a-f]{64})$", var.control_plane_image))
    error_message = "control_plane_image must name a tag or a digest."
  }
}

variable "vpc_cidr_block" {
  description = "IPv4 range of the VPC (/16 to /18)."
  type        = string
  default     = "10.40.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr_block, 0)) && contains(["16", "17", "18"], element(split("/", var.vpc_cidr_block), 1))
    error_message = "vpc_cidr_block must be an IPv4 CIDR with a prefix length of 16, 17 or 18."
  }
}

variable "az_count" {
  description = "Availability zones the deployment spans."
  type        = number
  default     = 3

  validation {
    condition     = var.az_count >= 2 && var.az_count <= 6 && floor(var.az_count) == var.az_count
    error_message = "az_count must be a whole number from 2 to 6."
  }
}

variable "single_nat_gateway" {
  description = "One NAT gateway instead of one per zone (cheaper, less available)."
  type        = bool
  default     = false
}

variable "allowed_client_cidrs" {
  description = "IPv4 ranges that may connect to the tenants' Postgres endpoints (TCP 5432)."
  type        = list(string)
  default     = ["0.0.0.0/0"]

  validation {
    condition     = length(var.allowed_client_cidrs) > 0 && alltrue([for c in var.allowed_client_cidrs : can(cidrnetmask(c))])
    error_message = "allowed_client_cidrs must hold at least one IPv4 CIDR."
  }
}

variable "control_plane_admin_cidrs" {
  description = "Private IPv4 ranges of operators (VPN, bastion) allowed to reach the control plane's admin API."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.control_plane_admin_cidrs : can(cidrnetmask(c)) && !endswith(c, "/0")])
    error_message = "control_plane_admin_cidrs must hold IPv4 CIDRs narrower than /0."
  }
}

variable "gateway_min_count" {
  description = "Fewest gateway tasks."
  type        = number
  default     = 2

  validation {
    condition     = var.gateway_min_count >= 1 && floor(var.gateway_min_count) == var.gateway_min_count
    error_message = "gateway_min_count must be a whole number of at least 1."
  }
}

variable "gateway_max_count" {
  description = "Most gateway tasks."
  type        = number
  default     = 10

  validation {
    condition     = var.gateway_max_count >= 1 && floor(var.gateway_max_count) == var.gateway_max_count
    error_message = "gateway_max_count must be a whole number of at least 1."
  }
}

variable "drain_seconds" {
  description = "GATEWAY_DRAIN_SECONDS and the load balancer's deregistration delay (at most 110 on Fargate)."
  type        = number
  default     = 60

  validation {
    condition     = var.drain_seconds >= 5 && var.drain_seconds <= 110
    error_message = "drain_seconds must be from 5 to 110."
  }
}

variable "tenant_certificates_secret_prefix" {
  description = "Secrets Manager name prefix (ending in /) of per-tenant backend client certificates copied into GATEWAY_SECRETS_DIR; null for none."
  type        = string
  default     = null

  validation {
    condition     = var.tenant_certificates_secret_prefix == null || can(regex("/$", var.tenant_certificates_secret_prefix))
    error_message = "tenant_certificates_secret_prefix must be null or end in /."
  }
}

variable "database_multi_az" {
  description = "Run the control plane's database with a standby in another zone."
  type        = bool
  default     = true
}

variable "enable_tracing" {
  description = "Send the gateway's OpenTelemetry traces to AWS X-Ray through the collector sidecar."
  type        = bool
  default     = false
}

variable "alarm_email" {
  description = "E-mail address subscribed to the alarms' SNS topic (null for none; the subscription must be confirmed)."
  type        = string
  default     = null

  validation {
    condition     = var.alarm_email == null || can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.alarm_email))
    error_message = "alarm_email must be null or an e-mail address."
  }
}

variable "deletion_protection" {
  description = "Protect the load balancers and the database against deletion (turn off before terraform destroy)."
  type        = bool
  default     = true
}
