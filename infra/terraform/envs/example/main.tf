locals {
  tenant_domain          = "db.${var.domain_name}"
  control_plane_hostname = "control-plane.${var.domain_name}"

  # Secrets whose values are put in out of band (PEM never goes through Terraform state):
  #   aws secretsmanager put-secret-value --secret-id <arn> --secret-string file://wildcard.crt
  gateway_pem_secrets = {
    tls-certificate            = "GATEWAY_TLS_CERT: PEM chain of the *.${local.tenant_domain} listener certificate (leaf first)"
    tls-private-key            = "GATEWAY_TLS_KEY: PEM private key of the listener certificate"
    backend-ca                 = "GATEWAY_BACKEND_CA: PEM CA bundle that verifies tenant backends"
    backend-client-certificate = "GATEWAY_BACKEND_CLIENT_CERT: PEM client certificate the gateway presents to backends"
    backend-client-key         = "GATEWAY_BACKEND_CLIENT_KEY: PEM private key of the backend client certificate"
  }
}

module "network" {
  source = "../../modules/network"

  name               = var.name
  cidr_block         = var.vpc_cidr_block
  az_count           = var.az_count
  single_nat_gateway = var.single_nat_gateway
}

resource "aws_ecs_cluster" "this" {
  name = var.name

  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

resource "aws_sns_topic" "alarms" {
  name = "${var.name}-alarms"
}

resource "aws_sns_topic_subscription" "alarm_email" {
  count = var.alarm_email == null ? 0 : 1

  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

resource "aws_secretsmanager_secret" "gateway_pem" {
  for_each = local.gateway_pem_secrets

  name                    = "${var.name}/gateway/${each.key}"
  description             = each.value
  recovery_window_in_days = 7
}

module "dns" {
  source = "../../modules/dns"

  zone_id                              = var.zone_id
  tenant_domain                        = local.tenant_domain
  load_balancer_dns_name               = module.gateway.load_balancer_dns_name
  load_balancer_zone_id                = module.gateway.load_balancer_zone_id
  control_plane_hostname               = local.control_plane_hostname
  control_plane_load_balancer_dns_name = module.control_plane.load_balancer_dns_name
  control_plane_load_balancer_zone_id  = module.control_plane.load_balancer_zone_id
}

module "database" {
  source = "../../modules/database"

  name                       = var.name
  vpc_id                     = module.network.vpc_id
  subnet_ids                 = module.network.private_subnet_ids
  allowed_security_group_ids = [module.control_plane.security_group_id]
  multi_az                   = var.database_multi_az
  deletion_protection        = var.deletion_protection
}

# The gateways read routes and cancel keys; the control plane publishes invalidations.
module "redis" {
  source = "../../modules/redis"

  name                       = var.name
  vpc_id                     = module.network.vpc_id
  subnet_ids                 = module.network.private_subnet_ids
  allowed_security_group_ids = [module.gateway.security_group_id, module.control_plane.security_group_id]
}

module "control_plane" {
  source = "../../modules/control_plane"

  name                      = var.name
  vpc_id                    = module.network.vpc_id
  private_subnet_ids        = module.network.private_subnet_ids
  cluster_arn               = aws_ecs_cluster.this.arn
  image                     = var.control_plane_image
  enable_https              = true
  certificate_arn           = module.dns.control_plane_certificate_arn
  client_security_group_ids = [module.gateway.security_group_id]
  admin_cidrs               = var.control_plane_admin_cidrs
  database_url_secret_arn   = module.database.database_url_secret_arn
  redis_url_secret_arn      = module.redis.redis_url_secret_arn
  alarm_actions             = [aws_sns_topic.alarms.arn]
  deletion_protection       = var.deletion_protection
}

module "gateway" {
  source = "../../modules/gateway"

  name                                  = var.name
  vpc_id                                = module.network.vpc_id
  private_subnet_ids                    = module.network.private_subnet_ids
  load_balancer_subnet_ids              = module.network.public_subnet_ids
  allowed_client_cidrs                  = var.allowed_client_cidrs
  cluster_arn                           = aws_ecs_cluster.this.arn
  image                                 = var.gateway_image
  min_count                             = var.gateway_min_count
  max_count                             = var.gateway_max_count
  drain_seconds                         = var.drain_seconds
  sni_suffixes                          = [local.tenant_domain]
  control_plane_url                     = "https://${module.dns.control_plane_fqdn}"
  control_plane_token_secret_arn        = module.control_plane.gateway_token_secret_arn
  redis_url_secret_arn                  = module.redis.redis_url_secret_arn
  tls_certificate_secret_arn            = aws_secretsmanager_secret.gateway_pem["tls-certificate"].arn
  tls_private_key_secret_arn            = aws_secretsmanager_secret.gateway_pem["tls-private-key"].arn
  backend_ca_secret_arn                 = aws_secretsmanager_secret.gateway_pem["backend-ca"].arn
  backend_client_certificate_secret_arn = aws_secretsmanager_secret.gateway_pem["backend-client-certificate"].arn
  backend_client_key_secret_arn         = aws_secretsmanager_secret.gateway_pem["backend-client-key"].arn
  tenant_certificates_secret_prefix     = var.tenant_certificates_secret_prefix
  enable_tracing                        = var.enable_tracing
  alarm_actions                         = [aws_sns_topic.alarms.arn]
  deletion_protection                   = var.deletion_protection
}
