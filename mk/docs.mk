# Files generated from code: docs/answers.md from the answers catalogue (src/pipeline/answers.ts),
# docs/config.md and config/schema.json from the config schema (src/config/reference.ts),
# the deployed Envoy configs from envoy/envoy.yaml (src/devstack/deploy-configs.ts).
# A unit test fails when a committed generated doc differs from what the code renders.
.PHONY: docs deploy-configs

## regenerate docs/answers.md, docs/config.md and config/schema.json
docs: build
	node dist/src/pipeline/answers-doc.js
	node dist/src/config/reference.js

## regenerate deploy/kubernetes/envoy-config.yaml and deploy/istio/envoyfilter.yaml from envoy/envoy.yaml
deploy-configs: build
	node dist/src/devstack/deploy-configs.js
