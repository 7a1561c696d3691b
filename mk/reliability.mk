# Reliability: the long fuzz run and the soak (docs/reliability.md).
.PHONY: fuzz soak soak-short soak-abuse resets

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

## 10 minutes of the soak's traffic alone, then beside cancelling and hostile clients (graceful
## close on, then off): writes bench/results/soak-abuse-<date>.json and .md
soak-abuse: build envoy system-deps
	node dist/bench/soak-abuse.js --minutes 10

## 200 cancelled streams a second for 2 minutes through Envoy without ext_proc_graceful_grpc_close
## (every ext_proc stream reset): 0 GOAWAY from the guard; writes bench/results/resets-<date>.json
resets: build envoy
	node dist/bench/resets.js --rate 200 --seconds 120 --out bench/results/resets-$$(date +%F).json
