# syntax=docker/dockerfile:1
# The image of any CivilDIY service, built from the repository root:
#   docker build --build-arg SERVICE=order-service -t civildiy/order-service .
# SERVICE is a workspace folder (auth-service, profile-service, posts-service, feed-service,
# search-service, order-service, notification-service, worker, gateway, mock-providers, dashboard).
# The image runs the service's compiled JavaScript with plain node, production dependencies only, as
# the unprivileged `node` user; its health check asks the service's /health/ready. The dashboard's
# image also holds its web page, bundled by Vite into dashboard/dist/web.

ARG NODE_VERSION=20

# Only the workspace manifests, so the dependency layers are rebuilt only when they change.
FROM node:${NODE_VERSION}-bookworm-slim AS manifests
WORKDIR /app
COPY . .
RUN find . -type f ! -name package.json ! -name package-lock.json -delete && find . -type d -empty -delete

# Compiles common and the service (TypeScript is a development dependency, needed here only). For the
# dashboard, its web page's sources and their dependencies (Preact, uPlot, Vite) come too, and
# scripts/build.mjs bundles the page into dashboard/dist/web; no other image has them.
FROM node:${NODE_VERSION}-bookworm-slim AS build
ARG SERVICE
RUN test -n "${SERVICE}" || (echo 'Set --build-arg SERVICE=<workspace folder>, e.g. order-service' >&2; exit 1)
WORKDIR /app
COPY --from=manifests /app ./
RUN --mount=type=cache,target=/root/.npm \
    page=""; if [ "${SERVICE}" = dashboard ]; then page="--workspace dashboard/web"; fi; \
    npm ci --workspace common --workspace "${SERVICE}" $page --include-workspace-root --ignore-scripts --no-audit --no-fund
COPY scripts/build.mjs scripts/
COPY tsconfig.base.json ./
COPY common/src common/src
COPY ${SERVICE}/src ${SERVICE}/src
# COPY cannot depend on SERVICE: the page's folder is mounted from the build context and copied for
# the dashboard only (Vite reads its tsconfig.json, which extends tsconfig.base.json, copied above).
RUN --mount=type=bind,source=dashboard/web,target=/tmp/dashboard-web \
    if [ "${SERVICE}" = dashboard ]; then mkdir -p dashboard/web && cp -R /tmp/dashboard-web/. dashboard/web/; fi
RUN node scripts/build.mjs

# What runs: production dependencies of common and the service (native ones built here).
FROM node:${NODE_VERSION}-bookworm-slim AS deps
ARG SERVICE
# onnxruntime-node (mock-providers' local embeddings model) would fetch CUDA libraries at install:
# the CPU library inside the package is the one used. npm 10 in this image ignores the root
# package.json's allowScripts, which says the same to npm 11.
ENV ONNXRUNTIME_NODE_INSTALL=skip
WORKDIR /app
COPY --from=manifests /app ./
RUN --mount=type=cache,target=/root/.npm \
    npm ci --omit=dev --workspace common --workspace "${SERVICE}" --include-workspace-root --no-audit --no-fund

FROM node:${NODE_VERSION}-bookworm-slim AS runtime
ARG SERVICE
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    DATA_DIR=/data \
    LOG_FORMAT=json \
    MALLOC_ARENA_MAX=2 \
    CIVILDIY_SERVICE=${SERVICE}
WORKDIR /app
# The manifests and every node_modules folder npm made (hoisted and nested), then the compiled code.
COPY --from=deps /app ./
COPY --from=build /app/common/dist ./common/dist
# (for the dashboard this includes its bundled page, dist/web, which it serves at /)
COPY --from=build /app/${SERVICE}/dist ./${SERVICE}/dist
# DATA_DIR holds what a service keeps on disk (auth's signing keys; an embedded PGlite database when
# the service's *_DATABASE_URL is unset): mount a volume there.
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
WORKDIR /app/${SERVICE}
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "/app/common/dist/runtime/healthcheck.js"]
# One process, so SIGTERM reaches the service's ordered shutdown directly. The same Node options
# and MALLOC_ARENA_MAX as npm start (SERVICE_NODE_ARGS, SERVICE_ENV in common/src/config/launcher-contract.ts).
CMD ["node", "--max-semi-space-size=8", "--enable-source-maps", "dist/main.js"]
