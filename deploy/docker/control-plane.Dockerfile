# syntax=docker/dockerfile:1
# The control plane's image, built from the repository root:
#   docker build -f deploy/docker/control-plane.Dockerfile -t tenantgate-control-plane .
# As the gateway's: the TypeScript sources run as they are, production dependencies only, the
# unprivileged `node` user, Node as PID 1 closing gracefully on SIGTERM. Without DATABASE_URL
# the embedded PGlite store lives in the /data volume.
# test/infra/images.test.ts checks this file against the repository and the control plane's variables.

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
RUN npm ci --omit=dev --workspace=apps/control-plane --include-workspace-root=false --ignore-scripts --no-audit --no-fund

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
COPY apps/control-plane/package.json apps/control-plane/
COPY apps/control-plane/src apps/control-plane/src
RUN mkdir /data && chown node:node /data
VOLUME /data
ENV CONTROL_PLANE_LISTEN=0.0.0.0:8080 CONTROL_PLANE_DATA_DIR=/data
EXPOSE 8080
USER node
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:8080/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
STOPSIGNAL SIGTERM
CMD ["node", "--conditions=@tenantgate/source", "apps/control-plane/src/main.ts"]
