locals {
  # The SQLSTATEs a client can be refused with before the splice (docs/architecture.md,
  # "Errors"), by class. An alarm sums the codes of its class.
  refusal_sqlstates = {
    "08" = ["08001", "08004", "08P01"]
    "28" = ["28000", "28P01"]
    "53" = ["53300"]
    "57" = ["57P01", "57P03"]
  }

  refusal_class_names = {
    "08" = "connection exception"
    "28" = "invalid authorization"
    "53" = "insufficient resources (tenant limits)"
    "57" = "operator intervention (shutdown, maintenance)"
  }

  # Fewer connections than this in five minutes say nothing about a p99.
  p99_min_observations = 20
}

resource "aws_cloudwatch_metric_alarm" "refusals" {
  for_each = var.refusal_alarm_thresholds

  alarm_name          = "${var.name}-gateway-refusals-${each.key}xxx"
  alarm_description   = "More than ${each.value} connections refused in 5 minutes with SQLSTATE class ${each.key}, ${local.refusal_class_names[each.key]} (${join(", ", local.refusal_sqlstates[each.key])})."
  comparison_operator = "GreaterThanThreshold"
  threshold           = each.value
  evaluation_periods  = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions

  metric_query {
    id          = "refusals"
    label       = "Refusals, SQLSTATE class ${each.key}"
    expression  = join(" + ", [for i, code in local.refusal_sqlstates[each.key] : "FILL(m${i}, 0)"])
    return_data = true
  }

  dynamic "metric_query" {
    for_each = local.refusal_sqlstates[each.key]

    content {
      id = "m${metric_query.key}"

      metric {
        namespace   = local.metrics_namespace
        metric_name = "tenantgate_refusals_total"
        period      = 300
        stat        = "Sum"
        dimensions = {
          service  = "gateway"
          sqlstate = metric_query.value
        }
      }
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "phase_latency_p99" {
  for_each = var.phase_latency_p99_thresholds

  alarm_name          = "${var.name}-gateway-${replace(each.key, "_", "-")}-p99"
  alarm_description   = "p99 of the ${each.key} phase above ${each.value} s: more than 1% of its observations fell above the ${each.value} s bucket, in two of the last three 5-minute periods."
  comparison_operator = "GreaterThanThreshold"
  threshold           = 1
  evaluation_periods  = 3
  datapoints_to_alarm = 2
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions

  metric_query {
    id          = "slow"
    label       = "Percent of ${each.key} observations above ${each.value} s"
    expression  = "IF(total >= ${local.p99_min_observations}, 100 * (total - FILL(fast, 0)) / total, 0)"
    return_data = true
  }

  metric_query {
    id = "total"

    metric {
      namespace   = local.metrics_namespace
      metric_name = "tenantgate_phase_observations"
      period      = 300
      stat        = "Sum"
      dimensions = {
        service = "gateway"
        phase   = each.key
      }
    }
  }

  metric_query {
    id = "fast"

    metric {
      namespace   = local.metrics_namespace
      metric_name = "tenantgate_phase_within"
      period      = 300
      stat        = "Sum"
      dimensions = {
        service = "gateway"
        phase   = each.key
        le      = each.value
      }
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "unhealthy_targets" {
  alarm_name          = "${var.name}-gateway-unhealthy-targets"
  alarm_description   = "Gateway tasks failing the load balancer's /readyz health check for 3 minutes."
  namespace           = "AWS/NetworkELB"
  metric_name         = "UnHealthyHostCount"
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 3
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions

  dimensions = {
    LoadBalancer = aws_lb.this.arn_suffix
    TargetGroup  = aws_lb_target_group.gateway.arn_suffix
  }
}

resource "aws_cloudwatch_metric_alarm" "no_healthy_targets" {
  alarm_name          = "${var.name}-gateway-no-healthy-targets"
  alarm_description   = "No gateway task passes the health check: every tenant is unreachable."
  namespace           = "AWS/NetworkELB"
  metric_name         = "HealthyHostCount"
  statistic           = "Minimum"
  period              = 60
  evaluation_periods  = 2
  comparison_operator = "LessThanThreshold"
  threshold           = 1
  treat_missing_data  = "breaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions

  dimensions = {
    LoadBalancer = aws_lb.this.arn_suffix
    TargetGroup  = aws_lb_target_group.gateway.arn_suffix
  }
}
