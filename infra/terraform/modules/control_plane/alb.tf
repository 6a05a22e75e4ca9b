resource "aws_security_group" "alb" {
  name        = "${var.name}-control-plane-alb"
  description = "tenantgate control plane internal load balancer: gateways and operators in"
  vpc_id      = var.vpc_id

  tags = {
    Name = "${var.name}-control-plane-alb"
  }
}

# count, not for_each: the ids are other resources' attributes, unknown until they exist.
resource "aws_vpc_security_group_ingress_rule" "alb_clients" {
  count = length(var.client_security_group_ids)

  security_group_id            = aws_security_group.alb.id
  description                  = "Control plane API from the gateways"
  referenced_security_group_id = var.client_security_group_ids[count.index]
  ip_protocol                  = "tcp"
  from_port                    = local.listener_port
  to_port                      = local.listener_port
}

resource "aws_vpc_security_group_ingress_rule" "alb_admins" {
  for_each = toset(var.admin_cidrs)

  security_group_id = aws_security_group.alb.id
  description       = "Control plane admin API from operators"
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = local.listener_port
  to_port           = local.listener_port
}

resource "aws_vpc_security_group_egress_rule" "alb_to_tasks" {
  security_group_id            = aws_security_group.alb.id
  description                  = "Requests and health checks to the control plane tasks"
  referenced_security_group_id = aws_security_group.tasks.id
  ip_protocol                  = "tcp"
  from_port                    = var.container_port
  to_port                      = var.container_port
}

resource "aws_lb" "this" {
  name                       = "${var.name}-cp"
  load_balancer_type         = "application"
  internal                   = true
  subnets                    = var.private_subnet_ids
  security_groups            = [aws_security_group.alb.id]
  drop_invalid_header_fields = true
  enable_deletion_protection = var.deletion_protection
}

resource "aws_lb_target_group" "control_plane" {
  name                 = "${var.name}-cp"
  port                 = var.container_port
  protocol             = "HTTP"
  target_type          = "ip"
  vpc_id               = var.vpc_id
  deregistration_delay = 30

  health_check {
    enabled             = true
    path                = "/readyz"
    matcher             = "200"
    interval            = 15
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }
}

resource "aws_lb_listener" "https" {
  count = var.enable_https ? 1 : 0

  load_balancer_arn = aws_lb.this.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = var.certificate_arn

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.control_plane.arn
  }

  lifecycle {
    precondition {
      condition     = var.certificate_arn != null
      error_message = "enable_https needs certificate_arn."
    }
  }
}

resource "aws_lb_listener" "http" {
  count = var.enable_https ? 0 : 1

  load_balancer_arn = aws_lb.this.arn
  port              = 80
  protocol          = "HTTP"

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.control_plane.arn
  }
}
