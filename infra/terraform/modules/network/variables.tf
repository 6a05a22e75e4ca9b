variable "name" {
  description = "Name prefix of every resource of the deployment (lowercase letters, digits, hyphens; at most 20 characters)."
  type        = string

  validation {
    condition     = can(regex("^[a-z]([a-z0-9-]{0,18}[a-z0-9])?$", var.name)) && !strcontains(var.name, "--")
    error_message = "name must be 1-20 characters of lowercase letters, digits and single hyphens, starting with a letter and not ending with a hyphen."
  }
}

variable "vpc_id" {
  description = "Existing VPC to deploy into. Null (the default) creates a VPC with public and private subnets, NAT gateways and an S3 gateway endpoint."
  type        = string
  default     = null

  validation {
    condition     = var.vpc_id == null || can(regex("^vpc-[0-9a-f]{8,17}$", var.vpc_id))
    error_message = "vpc_id must be null or a VPC id such as vpc-0123456789abcdef0."
  }
}

variable "private_subnet_ids" {
  description = "With vpc_id: private subnets, in at least two availability zones, with a route to the internet (NAT) for the tasks, Redis, the database and the internal load balancer. Ignored when the module creates the VPC."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for id in var.private_subnet_ids : can(regex("^subnet-[0-9a-f]{8,17}$", id))])
    error_message = "private_subnet_ids must hold subnet ids such as subnet-0123456789abcdef0."
  }
}

variable "public_subnet_ids" {
  description = "With vpc_id: public subnets, one per availability zone of the private ones, for an internet-facing network load balancer. May stay empty when the load balancer is internal. Ignored when the module creates the VPC."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for id in var.public_subnet_ids : can(regex("^subnet-[0-9a-f]{8,17}$", id))])
    error_message = "public_subnet_ids must hold subnet ids such as subnet-0123456789abcdef0."
  }
}

variable "cidr_block" {
  description = "IPv4 range of the VPC the module creates (a /16 to /18): public /24s (/26s for an /18) and private /20s (/22s) are cut from it."
  type        = string
  default     = "10.40.0.0/16"

  validation {
    condition     = can(cidrhost(var.cidr_block, 0)) && contains(["16", "17", "18"], element(split("/", var.cidr_block), 1))
    error_message = "cidr_block must be an IPv4 CIDR with a prefix length of 16, 17 or 18."
  }
}

variable "az_count" {
  description = "Number of availability zones the created VPC spans (the region must have that many)."
  type        = number
  default     = 3

  validation {
    condition     = var.az_count >= 2 && var.az_count <= 6 && floor(var.az_count) == var.az_count
    error_message = "az_count must be a whole number from 2 to 6: the fleet, Redis failover and a multi-AZ database need two zones at least."
  }
}

variable "single_nat_gateway" {
  description = "One NAT gateway for all zones instead of one per zone: cheaper, but the loss of its zone cuts every task off from the control plane's dependencies outside the VPC (ECR, Secrets Manager) and from tenant backends on the internet."
  type        = bool
  default     = false
}
