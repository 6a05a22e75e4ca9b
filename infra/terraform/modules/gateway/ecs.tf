resource "aws_cloudwatch_log_group" "gateway" {
  name              = "/ecs/${var.name}/gateway"
  retention_in_days = var.log_retention_days
}

# EMF events only carry the metrics into CloudWatch; a day of them is enough to debug the path.
resource "aws_cloudwatch_log_group" "metrics" {
  name              = "/ecs/${var.name}/gateway-metrics"
  retention_in_days = 1
}

locals {
  # Non-blocking: a slow log pipeline must never stall the splice.
  log_options = {
    "awslogs-group"   = aws_cloudwatch_log_group.gateway.name
    "awslogs-region"  = local.region
    "mode"            = "non-blocking"
    "max-buffer-size" = "25m"
  }

  secrets_sync_script = <<-EOT
    set -eu
    umask 077
    for name in $(aws secretsmanager list-secrets --filters Key=name,Values=${local.tenant_secrets_prefix} --query 'SecretList[].Name' --output text); do
      aws secretsmanager get-secret-value --secret-id "$name" --query SecretString --output text > "${local.secrets_dir}/$(basename "$name")"
    done
    chown -R ${var.gateway_uid} ${local.secrets_dir}
  EOT

  gateway_container = {
    name                   = "gateway"
    image                  = var.image
    essential              = true
    readonlyRootFilesystem = var.readonly_root_filesystem
    # Fargate caps this at 120 s; drain_seconds is validated to leave 10 s for the last closes.
    stopTimeout = local.stop_timeout
    portMappings = [
      { name = "postgres", containerPort = local.postgres_port, protocol = "tcp" },
      { name = "admin", containerPort = var.admin_port, protocol = "tcp" },
    ]
    environment = [for k in sort(keys(local.gateway_environment)) : { name = k, value = local.gateway_environment[k] }]
    secrets     = [for k in sort(keys(local.gateway_secrets)) : { name = k, valueFrom = local.gateway_secrets[k] }]
    ulimits     = [{ name = "nofile", softLimit = 1048576, hardLimit = 1048576 }]
    mountPoints = [
      for v in ["tenant-certificates"] : { sourceVolume = v, containerPath = local.secrets_dir, readOnly = true }
      if local.sync_tenant_certificates
    ]
    # The collector starts first and, depending on nothing, stops last: it keeps scraping while
    # the gateway drains.
    dependsOn = concat(
      [{ containerName = "collector", condition = "START" }],
      [for c in ["secrets-sync"] : { containerName = c, condition = "SUCCESS" } if local.sync_tenant_certificates],
    )
    healthCheck = {
      command     = ["CMD", "node", "-e", "fetch('http://127.0.0.1:${var.admin_port}/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
      interval    = 15
      timeout     = 5
      retries     = 3
      startPeriod = 30
    }
    logConfiguration = {
      logDriver = "awslogs"
      options   = merge(local.log_options, { "awslogs-stream-prefix" = "gateway" })
    }
  }

  collector_container = {
    name                   = "collector"
    image                  = var.collector_image
    essential              = false
    readonlyRootFilesystem = true
    memory                 = 256
    command                = ["--config=env:OTELCOL_CONFIG"]
    environment            = [{ name = "OTELCOL_CONFIG", value = yamlencode(local.collector_config) }]
    logConfiguration = {
      logDriver = "awslogs"
      options   = merge(local.log_options, { "awslogs-stream-prefix" = "collector" })
    }
  }

  secrets_sync_container = {
    name        = "secrets-sync"
    image       = var.secrets_sync_image
    essential   = false
    entryPoint  = ["/bin/sh", "-c"]
    command     = [local.secrets_sync_script]
    mountPoints = [{ sourceVolume = "tenant-certificates", containerPath = local.secrets_dir, readOnly = false }]
    logConfiguration = {
      logDriver = "awslogs"
      options   = merge(local.log_options, { "awslogs-stream-prefix" = "secrets-sync" })
    }
  }

  containers = concat(
    [local.gateway_container, local.collector_container],
    [for c in [local.secrets_sync_container] : c if local.sync_tenant_certificates],
  )
}

resource "aws_ecs_task_definition" "gateway" {
  family                   = "${var.name}-gateway"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.cpu
  memory                   = var.memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn
  container_definitions    = jsonencode(local.containers)

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  # Task-local scratch volume shared by the init container (writes) and the gateway (reads).
  dynamic "volume" {
    for_each = local.sync_tenant_certificates ? ["tenant-certificates"] : []

    content {
      name = volume.value
    }
  }
}

resource "aws_ecs_service" "gateway" {
  name                               = "${var.name}-gateway"
  cluster                            = var.cluster_arn
  task_definition                    = aws_ecs_task_definition.gateway.arn
  desired_count                      = var.min_count
  launch_type                        = "FARGATE"
  platform_version                   = "LATEST"
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  health_check_grace_period_seconds  = 60
  enable_ecs_managed_tags            = true
  propagate_tags                     = "SERVICE"
  wait_for_steady_state              = false

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.gateway.id]
    assign_public_ip = false
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.gateway.arn
    container_name   = "gateway"
    container_port   = local.postgres_port
  }

  # Autoscaling owns the count after creation.
  lifecycle {
    ignore_changes = [desired_count]

    precondition {
      condition     = var.max_count >= var.min_count
      error_message = "max_count must not be below min_count."
    }
  }

  depends_on = [aws_lb_listener.postgres]
}
