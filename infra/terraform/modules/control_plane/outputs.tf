output "load_balancer_dns_name" {
  description = "DNS name of the internal load balancer (the target of the control plane's host name)."
  value       = aws_lb.this.dns_name
}

output "load_balancer_zone_id" {
  description = "Route 53 zone id of the internal load balancer, for alias records."
  value       = aws_lb.this.zone_id
}

output "security_group_id" {
  description = "Security group of the control-plane tasks: the database and Redis admit it."
  value       = aws_security_group.tasks.id
}

output "load_balancer_security_group_id" {
  description = "Security group of the internal load balancer."
  value       = aws_security_group.alb.id
}

output "admin_tokens_secret_arn" {
  description = "Secret holding CONTROL_PLANE_ADMIN_TOKENS (the operators' token for provisioning tenants)."
  value       = aws_secretsmanager_secret_version.admin_tokens.arn
}

output "gateway_token_secret_arn" {
  description = "Secret holding the gateways' token: CONTROL_PLANE_GATEWAY_TOKENS here, GATEWAY_CONTROL_PLANE_TOKEN in the gateway."
  value       = aws_secretsmanager_secret_version.gateway_tokens.arn
}

output "service_name" {
  description = "Name of the control-plane ECS service."
  value       = aws_ecs_service.control_plane.name
}

output "log_group_name" {
  description = "CloudWatch log group of the control plane."
  value       = aws_cloudwatch_log_group.control_plane.name
}
