## Load-shedding evaluation (issue 5): no protection vs Envoy adaptive_concurrency vs the guard,
## open-loop sweep 0.5x-4x of the demo model's measured capacity; writes bench/results/shed-<date>.json
.PHONY: bench-shed
bench-shed: build envoy
	node dist/bench/shed/main.js
