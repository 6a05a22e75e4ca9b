output "address" {
  description = "Host name of the database (follows a multi-AZ failover)."
  value       = aws_db_instance.this.address
}

output "port" {
  description = "PostgreSQL port."
  value       = local.port
}

output "security_group_id" {
  description = "Security group of the database."
  value       = aws_security_group.database.id
}

output "database_url_secret_arn" {
  description = "Secret holding DATABASE_URL for the control plane."
  value       = aws_secretsmanager_secret_version.database_url.arn
}

output "instance_identifier" {
  description = "RDS instance identifier."
  value       = aws_db_instance.this.identifier
}
