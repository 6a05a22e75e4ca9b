output "load_balancer_dns_name" {
  description = "DNS name of the network load balancer (the target of the tenants' wildcard record)."
  value       = aws_lb.this.dns_name
}

output "load_balancer_zone_id" {
  description = "Route 53 zone id of the network load balancer, for alias records."
  value       = aws_lb.this.zone_id
}

output "load_balancer_arn" {
  description = "ARN of the network load balancer."
  value       = aws_lb.this.arn
}

output "target_group_arn" {
  description = "ARN of the gateways' target group."
  value       = aws_lb_target_group.gateway.arn
}

output "security_group_id" {
  description = "Security group of the gateway tasks: Redis and the control plane admit it."
  value       = aws_security_group.gateway.id
}

output "load_balancer_security_group_id" {
  description = "Security group of the network load balancer (the only one open to clients, on TCP 5432)."
  value       = aws_security_group.nlb.id
}

output "service_name" {
  description = "Name of the gateway ECS service."
  value       = aws_ecs_service.gateway.name
}

output "task_definition_arn" {
  description = "ARN of the gateway task definition revision in use."
  value       = aws_ecs_task_definition.gateway.arn
}

output "task_role_arn" {
  description = "ARN of the gateway task role (EMF metrics, traces, tenant certificate secrets)."
  value       = aws_iam_role.task.arn
}

output "log_group_name" {
  description = "CloudWatch log group of the gateway, collector and init containers."
  value       = aws_cloudwatch_log_group.gateway.name
}

output "metrics_namespace" {
  description = "CloudWatch namespace of the tenantgate_* metrics."
  value       = local.metrics_namespace
}

output "alarm_arns" {
  description = "ARNs of the gateway's CloudWatch alarms, by name."
  value = merge(
    { for k, a in aws_cloudwatch_metric_alarm.refusals : a.alarm_name => a.arn },
    { for k, a in aws_cloudwatch_metric_alarm.phase_latency_p99 : a.alarm_name => a.arn },
    {
      (aws_cloudwatch_metric_alarm.unhealthy_targets.alarm_name)  = aws_cloudwatch_metric_alarm.unhealthy_targets.arn
      (aws_cloudwatch_metric_alarm.no_healthy_targets.alarm_name) = aws_cloudwatch_metric_alarm.no_healthy_targets.arn
    },
  )
}
