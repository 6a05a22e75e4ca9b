data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

# Execution role: what ECS needs to start the task (image, container logs, the secrets it
# injects), nothing the running containers can use.
resource "aws_iam_role" "execution" {
  name               = "${var.name}-gateway-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

data "aws_iam_policy_document" "execution" {
  statement {
    sid = "PullPrivateImages"
    actions = [
      "ecr:GetAuthorizationToken",
      "ecr:BatchCheckLayerAvailability",
      "ecr:GetDownloadUrlForLayer",
      "ecr:BatchGetImage",
    ]
    resources = ["*"]
  }

  statement {
    sid       = "WriteContainerLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.gateway.arn}:*"]
  }

  statement {
    sid       = "ReadInjectedSecrets"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = values(local.gateway_secrets)
  }

  dynamic "statement" {
    for_each = length(var.secrets_kms_key_arns) > 0 ? [var.secrets_kms_key_arns] : []

    content {
      sid       = "DecryptInjectedSecrets"
      actions   = ["kms:Decrypt"]
      resources = statement.value
    }
  }
}

resource "aws_iam_role_policy" "execution" {
  name   = "start-gateway-task"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}

# Task role: the gateway itself calls no AWS API. The collector sidecar writes EMF events to its
# own log group (and traces to X-Ray when enabled); the init container, when tenant certificates
# are synced, lists and reads the secrets under their prefix.
resource "aws_iam_role" "task" {
  name               = "${var.name}-gateway-task"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

data "aws_iam_policy_document" "task" {
  statement {
    sid = "PublishMetricsAsEmf"
    actions = [
      "logs:CreateLogStream",
      "logs:PutLogEvents",
      "logs:DescribeLogStreams",
    ]
    resources = [
      aws_cloudwatch_log_group.metrics.arn,
      "${aws_cloudwatch_log_group.metrics.arn}:*",
    ]
  }

  dynamic "statement" {
    for_each = var.enable_tracing ? ["xray"] : []

    content {
      sid       = "PublishTraces"
      actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
      resources = ["*"]
    }
  }

  # ListSecrets cannot be narrowed to a resource; what it reveals is names, not values.
  dynamic "statement" {
    for_each = local.sync_tenant_certificates ? ["list"] : []

    content {
      sid       = "ListTenantCertificates"
      actions   = ["secretsmanager:ListSecrets"]
      resources = ["*"]
    }
  }

  dynamic "statement" {
    for_each = local.sync_tenant_certificates ? ["read"] : []

    content {
      sid       = "ReadTenantCertificates"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = ["arn:${local.partition}:secretsmanager:${local.region}:${local.account_id}:secret:${local.tenant_secrets_prefix}*"]
    }
  }

  dynamic "statement" {
    for_each = local.sync_tenant_certificates && length(var.secrets_kms_key_arns) > 0 ? [var.secrets_kms_key_arns] : []

    content {
      sid       = "DecryptTenantCertificates"
      actions   = ["kms:Decrypt"]
      resources = statement.value
    }
  }
}

resource "aws_iam_role_policy" "task" {
  name   = "gateway-task"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.task.json
}
