locals {
  # The Postgres port is the public contract of every tenant host name (<tenant>.<suffix>:5432).
  postgres_port = 5432

  # arn:<partition>:ecs:<region>:<account>:cluster/<name>
  cluster_arn_parts = split(":", var.cluster_arn)
  partition         = local.cluster_arn_parts[1]
  region            = local.cluster_arn_parts[3]
  account_id        = local.cluster_arn_parts[4]
  cluster_name      = element(split("/", local.cluster_arn_parts[5]), 1)

  workers           = coalesce(var.workers, max(1, floor(var.cpu / 1024)))
  stop_timeout      = var.drain_seconds + 10
  metrics_namespace = coalesce(var.metrics_namespace, "tenantgate/${var.name}")

  sync_tenant_certificates = var.tenant_certificates_secret_prefix != null
  tenant_secrets_prefix    = local.sync_tenant_certificates ? var.tenant_certificates_secret_prefix : ""
  secrets_dir              = "/run/tenantgate/secrets"

  # Secrets Manager values injected as environment variables at task start (PEM contents for the
  # certificate variables: see "Contract assumptions" in the README).
  gateway_secrets = {
    for name, arn in {
      GATEWAY_TLS_CERT            = var.tls_certificate_secret_arn
      GATEWAY_TLS_KEY             = var.tls_private_key_secret_arn
      GATEWAY_BACKEND_CA          = var.backend_ca_secret_arn
      GATEWAY_BACKEND_CLIENT_CERT = var.backend_client_certificate_secret_arn
      GATEWAY_BACKEND_CLIENT_KEY  = var.backend_client_key_secret_arn
      GATEWAY_CONTROL_PLANE_TOKEN = var.control_plane_token_secret_arn
      REDIS_URL                   = var.redis_url_secret_arn
    } : name => arn if arn != null
  }

  gateway_environment = merge(
    {
      GATEWAY_LISTEN            = "0.0.0.0:${local.postgres_port}"
      GATEWAY_WORKERS           = tostring(local.workers)
      GATEWAY_SNI_SUFFIXES      = join(",", var.sni_suffixes)
      GATEWAY_CONTROL_PLANE_URL = var.control_plane_url
      GATEWAY_PROXY_PROTOCOL    = "required"
      # Only the load balancer's nodes may say who the client is (their addresses are in its subnets).
      GATEWAY_PROXY_TRUSTED_CIDRS = join(",", [for subnet in data.aws_subnet.load_balancer : subnet.cidr_block])
      GATEWAY_ADMIN_LISTEN        = "0.0.0.0:${var.admin_port}"
      GATEWAY_DRAIN_SECONDS       = tostring(var.drain_seconds)
      LOG_LEVEL                   = var.log_level
    },
    local.sync_tenant_certificates ? { GATEWAY_SECRETS_DIR = local.secrets_dir } : {},
    var.enable_tracing ? {
      OTEL_SERVICE_NAME           = "tenantgate-gateway"
      OTEL_EXPORTER_OTLP_ENDPOINT = "http://127.0.0.1:4318"
      OTEL_EXPORTER_OTLP_PROTOCOL = "http/protobuf"
    } : {},
    var.extra_environment,
  )
}
