# The metrics path: the gateway serves prom-client metrics (prefix tenantgate_) on its admin port;
# an OpenTelemetry Collector in the same task scrapes them over localhost and writes them as
# CloudWatch Embedded Metric Format events to a log group, from which CloudWatch extracts the
# metrics declared below (nothing else becomes a billed custom metric).
#
# Percentiles: EMF carries only count, sum, min and max of a Prometheus (explicit-bucket)
# histogram, never its buckets, so CloudWatch cannot compute a p99 from it. Two buckets per
# phase are therefore renamed into plain counters before export: le="+Inf" (every observation)
# and le=<threshold>. "p99 > T" is then exactly "more than 1% of observations above the bucket
# bound T", which the alarms in alarms.tf evaluate with metric math.
#
# No "$" anywhere in this configuration: the collector expands "$" references in its
# configuration as environment variables before the prometheus receiver sees it.

locals {
  p99_buckets = sort(distinct(values(var.phase_latency_p99_thresholds)))

  # One dimension set per metric; every series carries service="gateway" from the scrape target.
  emf_metric_declarations = [
    { metric = "tenantgate_connections_total", dimensions = ["service", "outcome"] },
    { metric = "tenantgate_active_sessions", dimensions = ["service"] },
    { metric = "tenantgate_refusals_total", dimensions = ["service", "sqlstate"] },
    { metric = "tenantgate_phase_observations", dimensions = ["service", "phase"] },
    { metric = "tenantgate_phase_within", dimensions = ["service", "phase", "le"] },
    { metric = "tenantgate_cache_requests_total", dimensions = ["service", "tier", "result"] },
    { metric = "tenantgate_cancel_requests_total", dimensions = ["service", "result"] },
    { metric = "tenantgate_bytes_total", dimensions = ["service", "direction"] },
  ]

  scrape_relabel = [
    {
      source_labels = ["__name__", "le"]
      regex         = "tenantgate_phase_duration_seconds_bucket;\\+Inf"
      target_label  = "__name__"
      replacement   = "tenantgate_phase_observations"
      action        = "replace"
    },
    {
      source_labels = ["__name__"]
      regex         = "tenantgate_phase_observations"
      target_label  = "le"
      replacement   = ""
      action        = "replace"
    },
    {
      source_labels = ["__name__", "le"]
      regex         = "tenantgate_phase_duration_seconds_bucket;(${join("|", [for b in local.p99_buckets : replace(b, ".", "\\.")])})"
      target_label  = "__name__"
      replacement   = "tenantgate_phase_within"
      action        = "replace"
    },
    {
      source_labels = ["__name__"]
      regex         = "(${join("|", [for d in local.emf_metric_declarations : d.metric])})"
      action        = "keep"
    },
  ]

  collector_config = {
    receivers = {
      prometheus = {
        config = {
          scrape_configs = [
            {
              job_name               = "tenantgate-gateway"
              scrape_interval        = "${var.scrape_interval_seconds}s"
              metrics_path           = "/metrics"
              static_configs         = [{ targets = ["127.0.0.1:${var.admin_port}"], labels = { service = "gateway" } }]
              metric_relabel_configs = local.scrape_relabel
            },
          ]
        }
      }
      otlp = {
        protocols = {
          http = { endpoint = "127.0.0.1:4318" }
        }
      }
    }

    processors = {
      memory_limiter = { check_interval = "5s", limit_mib = 200 }
      batch          = { timeout = "10s" }
      # The renamed buckets arrive untyped (hence as gauges); as cumulative sums the exporter
      # turns them into per-interval deltas like every other counter.
      "transform/bucket_counters" = {
        metric_statements = [
          {
            context    = "metric"
            statements = ["convert_gauge_to_sum(\"cumulative\", true) where metric.name == \"tenantgate_phase_observations\" or metric.name == \"tenantgate_phase_within\""]
          },
        ]
      }
    }

    exporters = {
      awsemf = {
        region                  = local.region
        namespace               = local.metrics_namespace
        log_group_name          = aws_cloudwatch_log_group.metrics.name
        log_stream_name         = "gateway"
        dimension_rollup_option = "NoDimensionRollup"
        metric_declarations = [
          for d in local.emf_metric_declarations : {
            dimensions            = [d.dimensions]
            metric_name_selectors = ["^${d.metric}"]
          }
        ]
      }
      awsxray = { region = local.region }
    }

    service = {
      telemetry = { logs = { level = "warn" } }
      pipelines = {
        metrics = {
          receivers  = ["prometheus"]
          processors = ["memory_limiter", "transform/bucket_counters", "batch"]
          exporters  = ["awsemf"]
        }
        # Idle unless enable_tracing points the gateway's OTLP exporter here.
        traces = {
          receivers  = ["otlp"]
          processors = ["memory_limiter", "batch"]
          exporters  = ["awsxray"]
        }
      }
    }
  }
}
