output "tenant_endpoint" {
  description = "What a tenant puts in its connection string: host <tenant>.db.<domain>, port 5432, sslmode=verify-full."
  value       = "<tenant>.${local.tenant_domain}:5432"
}

output "load_balancer_dns_name" {
  description = "DNS name of the gateways' network load balancer."
  value       = module.gateway.load_balancer_dns_name
}

output "control_plane_url" {
  description = "Base URL of the control plane (inside the VPC and from admin_cidrs)."
  value       = "https://${module.dns.control_plane_fqdn}"
}

output "control_plane_admin_tokens_secret_arn" {
  description = "Secret with the admin token for provisioning tenants (aws secretsmanager get-secret-value)."
  value       = module.control_plane.admin_tokens_secret_arn
}

output "gateway_pem_secret_arns" {
  description = "Secrets to fill with PEM values before the gateways can start, by name."
  value       = { for k, s in aws_secretsmanager_secret.gateway_pem : k => s.arn }
}

output "metrics_namespace" {
  description = "CloudWatch namespace of the tenantgate_* metrics."
  value       = module.gateway.metrics_namespace
}

output "alarms_topic_arn" {
  description = "SNS topic the alarms notify."
  value       = aws_sns_topic.alarms.arn
}

output "ecs_cluster_name" {
  description = "ECS cluster of both services."
  value       = aws_ecs_cluster.this.name
}
