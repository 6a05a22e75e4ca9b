locals {
  cluster_arn_parts = split(":", var.cluster_arn)
  region            = local.cluster_arn_parts[3]
  account_id        = local.cluster_arn_parts[4]
  cluster_name      = element(split("/", local.cluster_arn_parts[5]), 1)

  listener_port = var.enable_https ? 443 : 80

  # Version ARNs (the secret's ARN) make tasks wait for the values, not only the secrets.
  secrets = {
    DATABASE_URL                 = var.database_url_secret_arn
    REDIS_URL                    = var.redis_url_secret_arn
    CONTROL_PLANE_ADMIN_TOKENS   = aws_secretsmanager_secret_version.admin_tokens.arn
    CONTROL_PLANE_GATEWAY_TOKENS = aws_secretsmanager_secret_version.gateway_tokens.arn
  }

  environment = merge(
    {
      CONTROL_PLANE_LISTEN = "0.0.0.0:${var.container_port}"
      LOG_LEVEL            = var.log_level
    },
    var.extra_environment,
  )
}

# Tokens: generated once, then owned by the secret. Rotate by putting "old,new" (both accepted)
# into the secret, redeploying, then "new"; Terraform ignores the value after creation.
resource "random_password" "admin_token" {
  length  = 48
  special = false
}

resource "random_password" "gateway_token" {
  length  = 48
  special = false
}

resource "aws_secretsmanager_secret" "admin_tokens" {
  name_prefix             = "${var.name}/control-plane/admin-tokens-"
  description             = "CONTROL_PLANE_ADMIN_TOKENS: comma-separated tokens that may read and write tenants"
  kms_key_id              = var.secrets_kms_key_arn
  recovery_window_in_days = 7
}

resource "aws_secretsmanager_secret_version" "admin_tokens" {
  secret_id     = aws_secretsmanager_secret.admin_tokens.id
  secret_string = random_password.admin_token.result

  lifecycle {
    ignore_changes = [secret_string]
  }
}

# One value serves both sides: the control plane's CONTROL_PLANE_GATEWAY_TOKENS (a list of one)
# and the gateways' GATEWAY_CONTROL_PLANE_TOKEN.
resource "aws_secretsmanager_secret" "gateway_tokens" {
  name_prefix             = "${var.name}/control-plane/gateway-tokens-"
  description             = "CONTROL_PLANE_GATEWAY_TOKENS and GATEWAY_CONTROL_PLANE_TOKEN: the read-only token of the gateways"
  kms_key_id              = var.secrets_kms_key_arn
  recovery_window_in_days = 7
}

resource "aws_secretsmanager_secret_version" "gateway_tokens" {
  secret_id     = aws_secretsmanager_secret.gateway_tokens.id
  secret_string = random_password.gateway_token.result

  lifecycle {
    ignore_changes = [secret_string]
  }
}
