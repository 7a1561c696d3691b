# Reliability: the long fuzz run and the soak (docs/reliability.md).
.PHONY: fuzz soak soak-short

## property/fuzz tests with 100 000 generated cases each (CI runs a fixed-seed 2 000)
fuzz: build
	FUZZ_RUNS=100000 npx tap run --disable-coverage --reporter=tap --timeout=3600 \
	  dist/test/unit/extproc/stream.property.test.js dist/test/unit/reliability/stages.property.test.js

## 30 minutes of mixed traffic through Envoy + guard; writes bench/results/soak-<date>.json
soak: build envoy system-deps
	node dist/bench/soak.js --minutes 30

## the same for 5 minutes
soak-short: build envoy system-deps
	node dist/bench/soak.js --minutes 5
