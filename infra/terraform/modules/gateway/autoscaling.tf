resource "aws_appautoscaling_target" "gateway" {
  service_namespace  = "ecs"
  resource_id        = "service/${local.cluster_name}/${aws_ecs_service.gateway.name}"
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = var.min_count
  max_capacity       = var.max_count
}

# Two target-tracking policies: the fleet scales out when either asks for it and in only when
# both allow it. Scaling in stops tasks, whose sessions are drained (57P01 when idle), so it is
# slow to act.
resource "aws_appautoscaling_policy" "cpu" {
  name               = "${var.name}-gateway-cpu"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.gateway.service_namespace
  resource_id        = aws_appautoscaling_target.gateway.resource_id
  scalable_dimension = aws_appautoscaling_target.gateway.scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = var.cpu_target_percent
    scale_out_cooldown = 60
    scale_in_cooldown  = 600

    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
  }
}

# Active sessions per task, from the gateway's own gauge (published by the collector sidecar):
# every task's samples land in one metric, whose Average is the mean per task.
resource "aws_appautoscaling_policy" "sessions" {
  name               = "${var.name}-gateway-sessions"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.gateway.service_namespace
  resource_id        = aws_appautoscaling_target.gateway.resource_id
  scalable_dimension = aws_appautoscaling_target.gateway.scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = var.sessions_per_task_target
    scale_out_cooldown = 60
    scale_in_cooldown  = 900

    customized_metric_specification {
      namespace   = local.metrics_namespace
      metric_name = "tenantgate_active_sessions"
      statistic   = "Average"

      dimensions {
        name  = "service"
        value = "gateway"
      }
    }
  }
}
