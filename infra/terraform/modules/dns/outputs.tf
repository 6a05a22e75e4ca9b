output "tenant_record_fqdn" {
  description = "The wildcard name of the tenants (*.<tenant_domain>)."
  value       = aws_route53_record.tenants.fqdn
}

output "control_plane_fqdn" {
  description = "Host name of the control plane (null without control_plane_hostname)."
  value       = one(aws_route53_record.control_plane[*].fqdn)
}

output "control_plane_certificate_arn" {
  description = "ARN of the control plane's validated ACM certificate (null without control_plane_hostname)."
  value       = one(aws_acm_certificate_validation.control_plane[*].certificate_arn)
}
