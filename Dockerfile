# inference-guard image: `docker build -t inference-guard:0.1.0 .`
# Not built on the development machine (no container engine there): see docs/operations.md for
# what was verified here.

# Both stages use the Node pinned in .nvmrc (Node 24 LTS), the one the toolchain installs into
# .tools/node and the tests run on; test/unit/devstack/node-version.test.ts keeps them equal.
# --- Envoy's ext_proc API descriptors, from go-control-plane (tools/envoy-api; see README) ---
FROM golang:1.26 AS envoy-api
WORKDIR /src
COPY tools/envoy-api ./
RUN go run . /envoy-api

# --- build: compile TypeScript, then keep production dependencies only ---
FROM node:24.22.3-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
# The descriptor of buf/validate/validate.proto the installed @bufbuild/protovalidate embeds; the
# protovalidate stage prints it as the source the buf compiler reads.
COPY scripts/protovalidate-set.mjs ./scripts/
RUN node scripts/protovalidate-set.mjs > /protovalidate.binpb
COPY tsconfig.json ./
COPY src ./src
# tsconfig also includes test/ and bench/; only src/ is copied, so only the guard is compiled. The
# demo model and the dev stack are dropped: nothing the guard runs imports them (a layer rule,
# .dependency-cruiser.cjs "runtime-without-dev-stack"); test/unit/devstack/dockerfile.test.ts
# checks this file against package.json.
RUN npx tsc -p . \
 && cp -r src/server/status/assets dist/src/server/status/assets \
 && rm -rf dist/src/demo dist/src/devstack \
 && npm prune --omit=dev --no-audit --no-fund --loglevel=error \
 && rm -f node_modules/@bufbuild/buf-*/bin/protoc-gen-buf-*
# npm keeps the buf binary of the image's platform (an optional dependency of @bufbuild/buf);
# the guard runs only bin/buf, so buf's protoc plugins (about 50 MB) are dropped.

# --- buf/validate/validate.proto as source, printed from that descriptor (tools/protovalidate) ---
FROM golang:1.26 AS protovalidate
WORKDIR /src
COPY tools/protovalidate ./
COPY --from=build /protovalidate.binpb ./
RUN go run . /protovalidate < protovalidate.binpb

# --- runtime: no system packages; output contracts compile with buf from node_modules ---
FROM node:24.22.3-slim
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
COPY --from=envoy-api /envoy-api ./gen/envoy-api
COPY --from=protovalidate /protovalidate ./gen/protovalidate
COPY package.json ./
COPY bin ./bin
# The embedded default config and its example contracts (used when no --config is given).
COPY config ./config
COPY proto ./proto
# An unprivileged user; the Kubernetes manifests set the same ids.
USER 10001:10001
EXPOSE 9464
# The guard's liveness on its admin port (listen.admin, 127.0.0.1:9464 unless the config moves it;
# the Kubernetes manifests probe the same path).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:9464/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# Same V8 flag as src/devstack/stack.ts GUARD_NODE_FLAGS (smaller young generation, lower RSS).
ENTRYPOINT ["node", "--max-semi-space-size=4", "--heap-growing-percent=50", "/app/bin/inference-guard.js"]
CMD ["serve"]
