# syntax=docker/dockerfile:1
# The gateway's image, built from the repository root:
#   docker build -f deploy/docker/gateway.Dockerfile -t tenantgate-gateway .
# Node 24 runs the TypeScript sources as they are (type stripping): no build step, the image
# holds the production dependencies and the sources the gateway imports, and runs as the
# unprivileged `node` user. Node is PID 1 and handles SIGTERM itself (drain, then exit).
# test/infra/images.test.ts checks this file against the repository and the gateway's variables.

FROM node:24-slim AS dependencies
WORKDIR /app
# Every workspace's manifest: npm ci checks the lockfile against all of them.
COPY package.json package-lock.json ./
COPY apps/gateway/package.json apps/gateway/
COPY apps/control-plane/package.json apps/control-plane/
COPY libs/wire/package.json libs/wire/
COPY libs/tenancy/package.json libs/tenancy/
COPY libs/runtime/package.json libs/runtime/
COPY test/package.json test/
COPY test/fixtures/package.json test/fixtures/
COPY bench/package.json bench/
RUN npm ci --omit=dev --workspace=apps/gateway --include-workspace-root=false --ignore-scripts --no-audit --no-fund

FROM node:24-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=dependencies /app/node_modules node_modules
COPY package.json ./
COPY libs/wire/package.json libs/wire/
COPY libs/wire/src libs/wire/src
COPY libs/tenancy/package.json libs/tenancy/
COPY libs/tenancy/src libs/tenancy/src
COPY libs/runtime/package.json libs/runtime/
COPY libs/runtime/src libs/runtime/src
COPY apps/gateway/package.json apps/gateway/
COPY apps/gateway/src apps/gateway/src
# Every interface inside the container: the Postgres port for clients, the admin port for the
# load balancer's health checks and the metrics scraper.
ENV GATEWAY_LISTEN=0.0.0.0:5432 GATEWAY_ADMIN_LISTEN=0.0.0.0:9187
EXPOSE 5432 9187
USER node
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:9187/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
STOPSIGNAL SIGTERM
CMD ["node", "--conditions=@tenantgate/source", "apps/gateway/src/main.ts"]
