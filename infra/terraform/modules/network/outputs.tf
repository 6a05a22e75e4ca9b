output "vpc_id" {
  description = "Id of the VPC (created or given)."
  value       = local.create_vpc ? aws_vpc.this[0].id : var.vpc_id
}

output "vpc_cidr_block" {
  description = "IPv4 range of the VPC."
  value       = local.create_vpc ? aws_vpc.this[0].cidr_block : data.aws_vpc.existing[0].cidr_block
}

output "private_subnet_ids" {
  description = "Private subnets, one per availability zone: tasks, Redis, the database, the internal load balancer."
  value       = local.create_vpc ? aws_subnet.private[*].id : var.private_subnet_ids

  precondition {
    condition     = local.create_vpc ? length(local.azs) >= 2 : length(var.private_subnet_ids) >= 2
    error_message = "At least two private subnets in different availability zones are needed (the region offers fewer zones than az_count, or private_subnet_ids has fewer than two)."
  }
}

output "public_subnet_ids" {
  description = "Public subnets for an internet-facing network load balancer (empty for an existing VPC given without them)."
  value       = local.create_vpc ? aws_subnet.public[*].id : var.public_subnet_ids
}

output "availability_zones" {
  description = "Availability zones of the created subnets (empty for an existing VPC)."
  value       = local.create_vpc ? local.azs : []
}
