# Operations checks: promtool (metrics exposition, alert rules and their unit tests, dashboard
# PromQL), deployment manifests (Kubernetes schemas, envoy --mode validate), and the status page in
# headless Chromium. `make test` runs all of them too; these targets run just this part.
.PHONY: ops-deps ops-check

## promtool, headless Chromium (Debian) and kubernetes-validate (PyPI, into .tools/)
ops-deps:
	@bash scripts/install-system-deps.sh promtool browser
	@bash scripts/install-kubernetes-validate.sh

## the operations tests only; the status page screenshot lands in test/artifacts/status-page.png
ops-check: build envoy ops-deps
	npx tap run --disable-coverage --reporter=tap --jobs=1 --timeout=600 \
	  dist/test/unit/ops/grafana.test.js dist/test/e2e/promtool.test.js \
	  dist/test/e2e/deployment.test.js dist/test/e2e/operations.test.js
