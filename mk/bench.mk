# Benchmarks (issue 7): Envoy alone vs Envoy + guard, configurations side by side, with h2load.
# Writes bench/results/<date>.json and .md and prints the table; a full run takes ~15 minutes.
# Extra options go in BENCH_ARGS, e.g. make bench BENCH_ARGS="--pin --label 'idle 2-core VM'"
# or a peer ext_proc server: BENCH_ARGS="--peer-cmd '…' --peer-addr 127.0.0.1:50099".
.PHONY: bench bench-quick

bench: build envoy system-deps
	node dist/bench/pipeline/main.js $(BENCH_ARGS)

## Every configuration once at a tiny load (seconds): checks the harness, not the guard
bench-quick: build envoy system-deps
	node dist/bench/pipeline/main.js --quick --out .tap/bench-quick $(BENCH_ARGS)
