## Load-shedding evaluation (issues 5 and 17): no protection vs Envoy adaptive_concurrency vs the guard,
## open-loop sweep 0.5x-4x of the demo model's measured capacity, then closed-loop retrying clients
## (immediate@4x, with and without a CPU hog, backoff@2x, backoff@1x), 5 repeats each, worst run
## reported; writes bench/results/shed-<date>.json and .md. Flags: SHED_ARGS="--repeats 2 --scenario-s 15"
.PHONY: bench-shed
bench-shed: build envoy
	node dist/bench/shed/main.js $(SHED_ARGS)
