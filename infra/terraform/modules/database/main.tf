locals {
  port          = 5432
  major_version = split(".", var.engine_version)[0]
}

# Alphanumeric: valid for RDS (no / @ " or space) and safe inside DATABASE_URL.
resource "random_password" "master" {
  length  = 40
  special = false
}

resource "aws_db_subnet_group" "this" {
  name        = "${var.name}-control-plane"
  description = "tenantgate control plane store"
  subnet_ids  = var.subnet_ids
}

resource "aws_security_group" "database" {
  name        = "${var.name}-control-plane-db"
  description = "tenantgate control plane store: control plane tasks only"
  vpc_id      = var.vpc_id

  tags = {
    Name = "${var.name}-control-plane-db"
  }
}

resource "aws_vpc_security_group_ingress_rule" "clients" {
  count = length(var.allowed_security_group_ids)

  security_group_id            = aws_security_group.database.id
  description                  = "PostgreSQL from the control plane"
  referenced_security_group_id = var.allowed_security_group_ids[count.index]
  ip_protocol                  = "tcp"
  from_port                    = local.port
  to_port                      = local.port
}

resource "aws_db_parameter_group" "this" {
  name_prefix = "${var.name}-control-plane-pg${local.major_version}-"
  family      = "postgres${local.major_version}"
  description = "tenantgate control plane store"

  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }

  parameter {
    name  = "log_min_duration_statement"
    value = "1000"
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_db_instance" "this" {
  identifier                      = "${var.name}-control-plane"
  engine                          = "postgres"
  engine_version                  = var.engine_version
  instance_class                  = var.instance_class
  allocated_storage               = var.allocated_storage
  max_allocated_storage           = var.max_allocated_storage
  storage_type                    = "gp3"
  storage_encrypted               = true
  kms_key_id                      = var.kms_key_arn
  db_name                         = var.database_name
  username                        = var.username
  password                        = random_password.master.result
  port                            = local.port
  multi_az                        = var.multi_az
  db_subnet_group_name            = aws_db_subnet_group.this.name
  vpc_security_group_ids          = [aws_security_group.database.id]
  parameter_group_name            = aws_db_parameter_group.this.name
  publicly_accessible             = false
  ca_cert_identifier              = "rds-ca-rsa2048-g1"
  backup_retention_period         = var.backup_retention_days
  backup_window                   = "02:00-03:00"
  maintenance_window              = "sun:03:30-sun:04:30"
  copy_tags_to_snapshot           = true
  deletion_protection             = var.deletion_protection
  skip_final_snapshot             = false
  final_snapshot_identifier       = "${var.name}-control-plane-final"
  auto_minor_version_upgrade      = true
  performance_insights_enabled    = var.performance_insights_enabled
  enabled_cloudwatch_logs_exports = ["postgresql"]
  apply_immediately               = var.apply_immediately
}

resource "aws_secretsmanager_secret" "database_url" {
  name_prefix             = "${var.name}/database-url-"
  description             = "DATABASE_URL of the tenantgate control plane"
  kms_key_id              = var.secrets_kms_key_arn
  recovery_window_in_days = 7
}

# verify-full: the control plane must trust the RDS certificate authority (see the README).
resource "aws_secretsmanager_secret_version" "database_url" {
  secret_id     = aws_secretsmanager_secret.database_url.id
  secret_string = "postgres://${var.username}:${random_password.master.result}@${aws_db_instance.this.address}:${local.port}/${var.database_name}?sslmode=verify-full"
}
