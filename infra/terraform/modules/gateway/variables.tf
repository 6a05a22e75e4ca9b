variable "name" {
  description = "Name prefix of every resource of the deployment (lowercase letters, digits, hyphens; at most 20 characters)."
  type        = string

  validation {
    condition     = can(regex("^[a-z]([a-z0-9-]{0,18}[a-z0-9])?$", var.name)) && !strcontains(var.name, "--")
    error_message = "name must be 1-20 characters of lowercase letters, digits and single hyphens, starting with a letter and not ending with a hyphen."
  }
}

variable "vpc_id" {
  description = "VPC of the load balancer and the tasks."
  type        = string

  validation {
    condition     = can(regex("^vpc-[0-9a-f]{8,17}$", var.vpc_id))
    error_message = "vpc_id must be a VPC id such as vpc-0123456789abcdef0."
  }
}

variable "private_subnet_ids" {
  description = "Private subnets of the gateway tasks, in at least two availability zones."
  type        = list(string)

  validation {
    condition     = length(var.private_subnet_ids) >= 2 && alltrue([for id in var.private_subnet_ids : can(regex("^subnet-[0-9a-f]{8,17}$", id))])
    error_message = "private_subnet_ids must hold at least two subnet ids (subnet-...)."
  }
}

variable "load_balancer_subnet_ids" {
  description = "Subnets of the network load balancer, one per availability zone of the tasks: public subnets for an internet-facing load balancer, private ones when internal_load_balancer is true."
  type        = list(string)

  validation {
    condition     = length(var.load_balancer_subnet_ids) >= 2 && alltrue([for id in var.load_balancer_subnet_ids : can(regex("^subnet-[0-9a-f]{8,17}$", id))])
    error_message = "load_balancer_subnet_ids must hold at least two subnet ids (subnet-...)."
  }
}

variable "internal_load_balancer" {
  description = "Make the network load balancer internal (clients inside the VPC or peered networks only) instead of internet-facing."
  type        = bool
  default     = false
}

variable "allowed_client_cidrs" {
  description = "IPv4 ranges that may open Postgres connections (TCP 5432) to the load balancer. Tenants narrow this further with their own allow-lists at the gateway."
  type        = list(string)
  default     = ["0.0.0.0/0"]

  validation {
    condition     = length(var.allowed_client_cidrs) > 0 && alltrue([for c in var.allowed_client_cidrs : can(cidrnetmask(c))])
    error_message = "allowed_client_cidrs must hold at least one IPv4 CIDR (the load balancer is IPv4 only)."
  }
}

variable "egress_cidrs" {
  description = "IPv4 ranges the gateway tasks may open connections to: tenant backends (any port), the AWS APIs and image registries through NAT, Redis and the control plane inside the VPC."
  type        = list(string)
  default     = ["0.0.0.0/0"]

  validation {
    condition     = length(var.egress_cidrs) > 0 && alltrue([for c in var.egress_cidrs : can(cidrnetmask(c))])
    error_message = "egress_cidrs must hold at least one IPv4 CIDR."
  }
}

variable "cluster_arn" {
  description = "ARN of the ECS cluster that runs the service (arn:<partition>:ecs:<region>:<account>:cluster/<name>); region and account are read from it."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:ecs:[a-z0-9-]+:[0-9]{12}:cluster/[A-Za-z0-9_-]+$", var.cluster_arn))
    error_message = "cluster_arn must be an ECS cluster ARN such as arn:aws:ecs:eu-west-1:123456789012:cluster/tenantgate."
  }
}

variable "image" {
  description = "Container image of the gateway (registry/repository:tag or @digest)."
  type        = string

  validation {
    condition     = can(regex("^[^\\s]+(:[A-Za-z0-9._-]+|@sha256:[0-9a-f]{64})$", var.image))
    error_message = "image must name a tag or a digest, for example 123456789012.dkr.ecr.eu-west-1.amazonaws.com/tenantgate-gateway:1.4.2."
  }
}

variable "cpu_architecture" {
  description = "CPU architecture of the tasks: X86_64, or ARM64 (Graviton, about 20% cheaper) when every image of the task is built for it."
  type        = string
  default     = "X86_64"

  validation {
    condition     = contains(["X86_64", "ARM64"], var.cpu_architecture)
    error_message = "cpu_architecture must be X86_64 or ARM64."
  }
}

variable "cpu" {
  description = "CPU units of one task (1024 = one vCPU), shared by the gateway and its metrics collector."
  type        = number
  default     = 1024

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096, 8192, 16384], var.cpu)
    error_message = "cpu must be a Fargate size: 256, 512, 1024, 2048, 4096, 8192 or 16384."
  }
}

variable "memory" {
  description = "Memory of one task in MiB; it must be a size Fargate allows for the chosen cpu."
  type        = number
  default     = 2048

  validation {
    condition     = var.memory >= 512 && var.memory <= 122880 && var.memory % 512 == 0
    error_message = "memory must be a multiple of 512 MiB from 512 to 122880."
  }
}

variable "workers" {
  description = "GATEWAY_WORKERS: listener workers per task. Null uses one per vCPU of the task (at least one)."
  type        = number
  default     = null

  validation {
    condition     = var.workers == null || (try(var.workers >= 1 && var.workers <= 16 && floor(var.workers) == var.workers, false))
    error_message = "workers must be null or a whole number from 1 to 16."
  }
}

variable "min_count" {
  description = "Fewest gateway tasks (also the count at creation). Two or more keep a zone failure from taking the fleet down."
  type        = number
  default     = 2

  validation {
    condition     = var.min_count >= 1 && floor(var.min_count) == var.min_count
    error_message = "min_count must be a whole number of at least 1."
  }
}

variable "max_count" {
  description = "Most gateway tasks autoscaling may run."
  type        = number
  default     = 10

  validation {
    condition     = var.max_count >= 1 && var.max_count <= 1000 && floor(var.max_count) == var.max_count
    error_message = "max_count must be a whole number from 1 to 1000 (and not below min_count)."
  }
}

variable "cpu_target_percent" {
  description = "Average CPU utilisation of the service that target tracking keeps the fleet at."
  type        = number
  default     = 60

  validation {
    condition     = var.cpu_target_percent >= 10 && var.cpu_target_percent <= 90
    error_message = "cpu_target_percent must be between 10 and 90."
  }
}

variable "sessions_per_task_target" {
  description = "Average tenantgate_active_sessions per task that target tracking keeps the fleet at (idle sessions cost memory, about 64 KB each, more than CPU)."
  type        = number
  default     = 2000

  validation {
    condition     = var.sessions_per_task_target >= 10
    error_message = "sessions_per_task_target must be at least 10."
  }
}

variable "admin_port" {
  description = "Port of the gateway's admin HTTP listener (GATEWAY_ADMIN_LISTEN): /healthz, /readyz for the load balancer's health checks, /metrics for the collector. Never exposed beyond the load balancer."
  type        = number
  default     = 8080

  validation {
    condition     = var.admin_port >= 1024 && var.admin_port <= 65535 && !contains([4317, 4318, 5432, 8888], var.admin_port)
    error_message = "admin_port must be from 1024 to 65535 and differ from 5432 (Postgres) and the collector's 4317, 4318 and 8888."
  }
}

variable "drain_seconds" {
  description = "GATEWAY_DRAIN_SECONDS: how long a stopping gateway lets sessions finish. Also the target group's deregistration delay; the container's stop timeout is this plus 10 s, and Fargate caps stop timeouts at 120 s, hence the upper bound of 110."
  type        = number
  default     = 60

  validation {
    condition     = var.drain_seconds >= 5 && var.drain_seconds <= 110 && floor(var.drain_seconds) == var.drain_seconds
    error_message = "drain_seconds must be a whole number from 5 to 110 (Fargate stops a container at most 120 s after SIGTERM; 10 s are kept for closing what is left)."
  }
}

variable "tcp_idle_timeout_seconds" {
  description = "Idle timeout of the load balancer's TCP flows: a session silent for longer is cut by the load balancer without a word to either side. Clients with long idle pooled connections should send TCP keepalives more often than this."
  type        = number
  default     = 3600

  validation {
    condition     = var.tcp_idle_timeout_seconds >= 60 && var.tcp_idle_timeout_seconds <= 6000
    error_message = "tcp_idle_timeout_seconds must be from 60 to 6000 (the load balancer's limits)."
  }
}

variable "sni_suffixes" {
  description = "GATEWAY_SNI_SUFFIXES: domain suffixes under which tenants get their host names (db.example.com gives acme.db.example.com). The listener certificate must cover *.<suffix> for each."
  type        = list(string)

  validation {
    condition     = length(var.sni_suffixes) > 0 && alltrue([for s in var.sni_suffixes : can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]{2,63}$", s))])
    error_message = "sni_suffixes must hold at least one lowercase domain name without a leading dot or wildcard, such as db.example.com."
  }
}

variable "control_plane_url" {
  description = "GATEWAY_CONTROL_PLANE_URL: base URL of the control plane (scheme and host, no trailing slash)."
  type        = string

  validation {
    condition     = can(regex("^https?://[A-Za-z0-9.-]+(:[0-9]+)?$", var.control_plane_url))
    error_message = "control_plane_url must be a base URL such as https://control-plane.example.com."
  }
}

variable "control_plane_token_secret_arn" {
  description = "Secrets Manager secret holding the gateway's control-plane token (GATEWAY_CONTROL_PLANE_TOKEN)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:secretsmanager:", var.control_plane_token_secret_arn))
    error_message = "control_plane_token_secret_arn must be a Secrets Manager secret ARN."
  }
}

variable "redis_url_secret_arn" {
  description = "Secrets Manager secret holding REDIS_URL (rediss:// with the auth token)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:secretsmanager:", var.redis_url_secret_arn))
    error_message = "redis_url_secret_arn must be a Secrets Manager secret ARN."
  }
}

variable "tls_certificate_secret_arn" {
  description = "Secrets Manager secret whose string is the PEM certificate chain of the listener (GATEWAY_TLS_CERT), covering *.<suffix> for every SNI suffix."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:secretsmanager:", var.tls_certificate_secret_arn))
    error_message = "tls_certificate_secret_arn must be a Secrets Manager secret ARN."
  }
}

variable "tls_private_key_secret_arn" {
  description = "Secrets Manager secret whose string is the PEM private key of the listener certificate (GATEWAY_TLS_KEY)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:secretsmanager:", var.tls_private_key_secret_arn))
    error_message = "tls_private_key_secret_arn must be a Secrets Manager secret ARN."
  }
}

variable "backend_ca_secret_arn" {
  description = "Secrets Manager secret whose string is the PEM CA bundle that verifies tenant backends without a CA of their own (GATEWAY_BACKEND_CA). Null leaves the variable unset."
  type        = string
  default     = null

  validation {
    condition     = var.backend_ca_secret_arn == null || can(regex("^arn:aws[a-z-]*:secretsmanager:", var.backend_ca_secret_arn))
    error_message = "backend_ca_secret_arn must be null or a Secrets Manager secret ARN."
  }
}

variable "backend_client_certificate_secret_arn" {
  description = "Secrets Manager secret whose string is the default PEM client certificate the gateway presents to tenant backends (GATEWAY_BACKEND_CLIENT_CERT)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:secretsmanager:", var.backend_client_certificate_secret_arn))
    error_message = "backend_client_certificate_secret_arn must be a Secrets Manager secret ARN."
  }
}

variable "backend_client_key_secret_arn" {
  description = "Secrets Manager secret whose string is the PEM private key of the default backend client certificate (GATEWAY_BACKEND_CLIENT_KEY)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:secretsmanager:", var.backend_client_key_secret_arn))
    error_message = "backend_client_key_secret_arn must be a Secrets Manager secret ARN."
  }
}

variable "tenant_certificates_secret_prefix" {
  description = "Name prefix (ending in /) of Secrets Manager secrets that hold per-tenant backend client certificates, named <prefix><name>.crt and <prefix><name>.key. When set, an init container copies them into GATEWAY_SECRETS_DIR at task start. Null leaves GATEWAY_SECRETS_DIR unset."
  type        = string
  default     = null

  validation {
    condition     = var.tenant_certificates_secret_prefix == null || can(regex("^[A-Za-z0-9_+=.@-]+(/[A-Za-z0-9_+=.@-]+)*/$", var.tenant_certificates_secret_prefix))
    error_message = "tenant_certificates_secret_prefix must be null or a secret name prefix ending in /, such as tenantgate/tenant-certificates/."
  }
}

variable "gateway_uid" {
  description = "User id the gateway image runs as; the init container hands the copied tenant certificates to it (mode 0600)."
  type        = number
  default     = 1000

  validation {
    condition     = var.gateway_uid >= 0 && var.gateway_uid <= 65535 && floor(var.gateway_uid) == var.gateway_uid
    error_message = "gateway_uid must be a whole number from 0 to 65535."
  }
}

variable "secrets_kms_key_arns" {
  description = "Customer-managed KMS keys that encrypt the secrets above (empty when they use the AWS-managed key); the roles get kms:Decrypt on them."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for k in var.secrets_kms_key_arns : can(regex("^arn:aws[a-z-]*:kms:", k))])
    error_message = "secrets_kms_key_arns must hold KMS key ARNs."
  }
}

variable "log_level" {
  description = "LOG_LEVEL of the gateway (a pino level)."
  type        = string
  default     = "info"

  validation {
    condition     = contains(["fatal", "error", "warn", "info", "debug", "trace", "silent"], var.log_level)
    error_message = "log_level must be one of fatal, error, warn, info, debug, trace, silent."
  }
}

variable "log_retention_days" {
  description = "Retention of the gateway's CloudWatch log group, in days."
  type        = number
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a retention CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, ... 3653)."
  }
}

variable "extra_environment" {
  description = "Further environment variables of the gateway container, such as OTEL_RESOURCE_ATTRIBUTES. They override the module's own."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k in keys(var.extra_environment) : can(regex("^[A-Z_][A-Z0-9_]*$", k))])
    error_message = "extra_environment keys must be upper-case environment variable names."
  }
}

variable "readonly_root_filesystem" {
  description = "Run the gateway container with a read-only root file system (it writes nothing: certificates come in environment variables, logs go to stdout)."
  type        = bool
  default     = true
}

variable "enable_tracing" {
  description = "Send the gateway's OpenTelemetry traces (OTEL_EXPORTER_OTLP_ENDPOINT) to the collector sidecar, which forwards them to AWS X-Ray."
  type        = bool
  default     = false
}

variable "collector_image" {
  description = "Image of the metrics sidecar: an OpenTelemetry Collector distribution with the prometheus receiver, the transform processor and the awsemf and awsxray exporters (the upstream contrib distribution has all four; ADOT lacks the transform processor)."
  type        = string
  default     = "ghcr.io/open-telemetry/opentelemetry-collector-releases/opentelemetry-collector-contrib:0.128.0"

  validation {
    condition     = can(regex("^[^\\s]+(:[A-Za-z0-9._-]+|@sha256:[0-9a-f]{64})$", var.collector_image))
    error_message = "collector_image must name a tag or a digest."
  }
}

variable "secrets_sync_image" {
  description = "Image of the init container that copies tenant certificates into GATEWAY_SECRETS_DIR (needs /bin/sh and the AWS CLI v2)."
  type        = string
  default     = "public.ecr.aws/aws-cli/aws-cli:2.17.0"

  validation {
    condition     = can(regex("^[^\\s]+(:[A-Za-z0-9._-]+|@sha256:[0-9a-f]{64})$", var.secrets_sync_image))
    error_message = "secrets_sync_image must name a tag or a digest."
  }
}

variable "metrics_namespace" {
  description = "CloudWatch namespace of the gateway's metrics. Null uses tenantgate/<name>, so that several deployments in one account stay apart."
  type        = string
  default     = null

  validation {
    condition     = var.metrics_namespace == null || can(regex("^[A-Za-z0-9._/#:-]{1,255}$", var.metrics_namespace))
    error_message = "metrics_namespace must be null or a CloudWatch namespace (letters, digits and . _ / # : -)."
  }
}

variable "scrape_interval_seconds" {
  description = "How often the collector scrapes the gateway's /metrics."
  type        = number
  default     = 30

  validation {
    condition     = var.scrape_interval_seconds >= 10 && var.scrape_interval_seconds <= 60
    error_message = "scrape_interval_seconds must be from 10 to 60 (alarms and autoscaling read one-minute periods)."
  }
}

variable "phase_latency_p99_thresholds" {
  description = "Per connection phase (tls, resolve, admit, auth, backend_connect, backend_tls, total), the p99 latency in seconds above which an alarm fires. Each value must be a bucket bound of the gateway's histograms (apps/gateway/src/metrics.ts PHASE_BUCKETS: 0.0001 0.00025 0.0005 0.001 0.0025 0.005 0.01 0.025 0.05 0.1 0.25 0.5 1 2.5 5 10), written as prom-client writes the le label."
  type        = map(string)
  default = {
    resolve         = "0.1"
    backend_connect = "0.5"
    total           = "1"
  }

  validation {
    condition = alltrue([
      for phase, le in var.phase_latency_p99_thresholds :
      contains(["tls", "resolve", "admit", "auth", "backend_connect", "backend_tls", "total"], phase) &&
      contains(["0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10"], le)
    ])
    error_message = "phase_latency_p99_thresholds keys must be phases (tls, resolve, admit, auth, backend_connect, backend_tls, total) and values bucket bounds (0.0001 ... 10, written like \"0.25\" or \"1\")."
  }
}

variable "refusal_alarm_thresholds" {
  description = "Per SQLSTATE class of the refusals a client can see (08 connection, 28 authorization, 53 limits, 57 shutdown/maintenance), the number of refusals in five minutes above which an alarm fires. Leave a class out to have no alarm for it."
  type        = map(number)
  default = {
    "08" = 50
    "28" = 200
    "53" = 100
    "57" = 500
  }

  validation {
    condition     = alltrue([for class, n in var.refusal_alarm_thresholds : contains(["08", "28", "53", "57"], class) && n >= 1])
    error_message = "refusal_alarm_thresholds keys must be SQLSTATE classes 08, 28, 53 or 57, and values at least 1."
  }
}

variable "alarm_actions" {
  description = "ARNs (SNS topics) notified when an alarm fires and when it clears."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for a in var.alarm_actions : can(regex("^arn:aws[a-z-]*:", a))])
    error_message = "alarm_actions must hold ARNs."
  }
}

variable "deletion_protection" {
  description = "Protect the network load balancer (and so every tenant's address) against deletion."
  type        = bool
  default     = true
}
