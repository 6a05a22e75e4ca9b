variable "zone_id" {
  description = "Public Route 53 hosted zone that holds the tenant suffix (and the control plane's host name)."
  type        = string

  validation {
    condition     = can(regex("^Z[A-Z0-9]{1,31}$", var.zone_id))
    error_message = "zone_id must be a Route 53 hosted zone id such as Z0123456789ABCDEFGHIJ."
  }
}

variable "tenant_domain" {
  description = "Suffix under which every tenant gets a name: db.example.com makes *.db.example.com point at the gateways. It must be GATEWAY_SNI_SUFFIXES (or one of them)."
  type        = string

  validation {
    condition     = can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]{2,63}$", var.tenant_domain))
    error_message = "tenant_domain must be a lowercase domain name without a leading dot or wildcard, such as db.example.com."
  }
}

variable "load_balancer_dns_name" {
  description = "DNS name of the gateways' network load balancer."
  type        = string

  validation {
    condition     = length(var.load_balancer_dns_name) > 0
    error_message = "load_balancer_dns_name must not be empty."
  }
}

variable "load_balancer_zone_id" {
  description = "Route 53 zone id of the gateways' network load balancer."
  type        = string

  validation {
    condition     = length(var.load_balancer_zone_id) > 0
    error_message = "load_balancer_zone_id must not be empty."
  }
}

variable "control_plane_hostname" {
  description = "Host name of the control plane's internal load balancer (control-plane.example.com), published in the public zone with private addresses, with a DNS-validated ACM certificate. Null creates neither."
  type        = string
  default     = null

  validation {
    condition     = var.control_plane_hostname == null || can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]{2,63}$", var.control_plane_hostname))
    error_message = "control_plane_hostname must be null or a lowercase host name such as control-plane.example.com."
  }
}

variable "control_plane_load_balancer_dns_name" {
  description = "DNS name of the control plane's internal load balancer (with control_plane_hostname)."
  type        = string
  default     = null

  validation {
    condition     = var.control_plane_load_balancer_dns_name == null || try(length(var.control_plane_load_balancer_dns_name) > 0, false)
    error_message = "control_plane_load_balancer_dns_name must be null or a non-empty string."
  }
}

variable "control_plane_load_balancer_zone_id" {
  description = "Route 53 zone id of the control plane's internal load balancer (with control_plane_hostname)."
  type        = string
  default     = null

  validation {
    condition     = var.control_plane_load_balancer_zone_id == null || try(length(var.control_plane_load_balancer_zone_id) > 0, false)
    error_message = "control_plane_load_balancer_zone_id must be null or a non-empty string."
  }
}
