# The load balancer passes TCP through: the Postgres TLS upgrade (SSLRequest, or direct TLS with
# ALPN "postgresql") is the gateway's, which reads the tenant from the SNI.
resource "aws_lb" "this" {
  name                             = "${var.name}-gateway"
  load_balancer_type               = "network"
  internal                         = var.internal_load_balancer
  subnets                          = var.load_balancer_subnet_ids
  security_groups                  = [aws_security_group.nlb.id]
  ip_address_type                  = "ipv4"
  enable_cross_zone_load_balancing = true
  enable_deletion_protection       = var.deletion_protection
}

resource "aws_lb_target_group" "gateway" {
  name        = "${var.name}-gateway"
  port        = local.postgres_port
  protocol    = "TCP"
  target_type = "ip"
  vpc_id      = var.vpc_id

  # The client's address reaches the gateway in a PROXY v2 header (tenant CIDR allow-lists,
  # logs); with IP targets the packets themselves come from the load balancer.
  proxy_protocol_v2  = true
  preserve_client_ip = false

  # Stopping a task: ECS deregisters it, existing sessions keep running (no new ones) for the
  # deregistration delay, then the gateway gets SIGTERM and drains for as long again. The load
  # balancer must not reset the sessions at the end of the delay: the gateway ends them itself
  # with 57P01 at a message boundary.
  deregistration_delay   = var.drain_seconds
  connection_termination = false

  # /readyz turns false when a gateway drains (or cannot serve): by default the load balancer
  # would then reset every session on it. Let them drain instead, as on deregistration.
  target_health_state {
    enable_unhealthy_connection_termination = false
    unhealthy_draining_interval             = var.drain_seconds
  }

  health_check {
    enabled             = true
    protocol            = "HTTP"
    port                = tostring(var.admin_port)
    path                = "/readyz"
    matcher             = "200"
    interval            = 10
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 2
  }
}

resource "aws_lb_listener" "postgres" {
  load_balancer_arn        = aws_lb.this.arn
  port                     = local.postgres_port
  protocol                 = "TCP"
  tcp_idle_timeout_seconds = var.tcp_idle_timeout_seconds

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.gateway.arn
  }
}

# The subnets' address blocks: the load balancer's nodes connect to the tasks from these, and
# only headers from them are trusted (GATEWAY_PROXY_TRUSTED_CIDRS).
data "aws_subnet" "load_balancer" {
  for_each = toset(var.load_balancer_subnet_ids)
  id       = each.value
}
