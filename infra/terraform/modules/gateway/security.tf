# Two groups: the load balancer's (the only thing open to clients, on TCP 5432) and the tasks'
# (reachable from the load balancer only: Postgres and the health-check port).

resource "aws_security_group" "nlb" {
  name        = "${var.name}-gateway-nlb"
  description = "tenantgate network load balancer: Postgres clients in, gateway tasks out"
  vpc_id      = var.vpc_id

  tags = {
    Name = "${var.name}-gateway-nlb"
  }
}

# The port is written out (not local.postgres_port) so that the static check of the tree can see
# that the only rule open to the world admits TCP 5432 and nothing else.
resource "aws_vpc_security_group_ingress_rule" "nlb_clients" {
  for_each = toset(var.allowed_client_cidrs)

  security_group_id = aws_security_group.nlb.id
  description       = "Postgres clients"
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = 5432
  to_port           = 5432
}

resource "aws_vpc_security_group_egress_rule" "nlb_to_gateway" {
  security_group_id            = aws_security_group.nlb.id
  description                  = "Postgres to the gateway tasks"
  referenced_security_group_id = aws_security_group.gateway.id
  ip_protocol                  = "tcp"
  from_port                    = local.postgres_port
  to_port                      = local.postgres_port
}

resource "aws_vpc_security_group_egress_rule" "nlb_health_checks" {
  security_group_id            = aws_security_group.nlb.id
  description                  = "Health checks to the gateway admin port"
  referenced_security_group_id = aws_security_group.gateway.id
  ip_protocol                  = "tcp"
  from_port                    = var.admin_port
  to_port                      = var.admin_port
}

resource "aws_security_group" "gateway" {
  name        = "${var.name}-gateway"
  description = "tenantgate gateway tasks: from the network load balancer only"
  vpc_id      = var.vpc_id

  tags = {
    Name = "${var.name}-gateway"
  }
}

resource "aws_vpc_security_group_ingress_rule" "gateway_postgres" {
  security_group_id            = aws_security_group.gateway.id
  description                  = "Postgres from the network load balancer"
  referenced_security_group_id = aws_security_group.nlb.id
  ip_protocol                  = "tcp"
  from_port                    = local.postgres_port
  to_port                      = local.postgres_port
}

resource "aws_vpc_security_group_ingress_rule" "gateway_health_checks" {
  security_group_id            = aws_security_group.gateway.id
  description                  = "Health checks (/readyz) from the network load balancer"
  referenced_security_group_id = aws_security_group.nlb.id
  ip_protocol                  = "tcp"
  from_port                    = var.admin_port
  to_port                      = var.admin_port
}

# Tenant backends may listen anywhere on any port, so egress is by range, not by service.
resource "aws_vpc_security_group_egress_rule" "gateway_out" {
  for_each = toset(var.egress_cidrs)

  security_group_id = aws_security_group.gateway.id
  description       = "Tenant backends, Redis, the control plane, AWS APIs"
  cidr_ipv4         = each.value
  ip_protocol       = "-1"
}
