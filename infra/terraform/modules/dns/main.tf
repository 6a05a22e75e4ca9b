locals {
  with_control_plane = var.control_plane_hostname != null
}

# Every tenant name, <tenant>.<tenant_domain>, resolves to the gateways; the gateway reads the
# tenant from the TLS SNI, so DNS needs no record per tenant.
resource "aws_route53_record" "tenants" {
  zone_id = var.zone_id
  name    = "*.${var.tenant_domain}"
  type    = "A"

  alias {
    name                   = var.load_balancer_dns_name
    zone_id                = var.load_balancer_zone_id
    evaluate_target_health = true
  }
}

resource "aws_acm_certificate" "control_plane" {
  count = local.with_control_plane ? 1 : 0

  domain_name       = var.control_plane_hostname
  validation_method = "DNS"

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_route53_record" "control_plane_validation" {
  for_each = {
    for o in flatten(aws_acm_certificate.control_plane[*].domain_validation_options) : o.domain_name => o
  }

  zone_id         = var.zone_id
  name            = each.value.resource_record_name
  type            = each.value.resource_record_type
  records         = [each.value.resource_record_value]
  ttl             = 300
  allow_overwrite = true
}

resource "aws_acm_certificate_validation" "control_plane" {
  count = local.with_control_plane ? 1 : 0

  certificate_arn         = aws_acm_certificate.control_plane[0].arn
  validation_record_fqdns = [for r in aws_route53_record.control_plane_validation : r.fqdn]
}

resource "aws_route53_record" "control_plane" {
  count = local.with_control_plane ? 1 : 0

  zone_id = var.zone_id
  name    = var.control_plane_hostname
  type    = "A"

  alias {
    name                   = var.control_plane_load_balancer_dns_name
    zone_id                = var.control_plane_load_balancer_zone_id
    evaluate_target_health = true
  }

  lifecycle {
    precondition {
      condition     = var.control_plane_load_balancer_dns_name != null && var.control_plane_load_balancer_zone_id != null
      error_message = "control_plane_hostname needs control_plane_load_balancer_dns_name and control_plane_load_balancer_zone_id."
    }
  }
}
