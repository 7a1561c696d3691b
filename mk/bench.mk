# Benchmarks (issue 7): Envoy alone vs Envoy + guard, configurations side by side, with h2load.
# Writes bench/results/<date>.json and .md and prints the table; a full run takes ~15 minutes.
# Extra options go in BENCH_ARGS, e.g. make bench BENCH_ARGS="--pin --label 'idle 2-core VM'"
# or a peer ext_proc server: BENCH_ARGS="--peer-cmd '…' --peer-addr 127.0.0.1:50099".
.PHONY: bench bench-quick

bench: build envoy system-deps
	node dist/bench/pipeline/main.js $(BENCH_ARGS)

## Every configuration once at a tiny load (seconds): checks the harnesses, not the guard
bench-quick: build envoy system-deps
	node dist/bench/pipeline/main.js --quick --out .tap/bench-quick $(BENCH_ARGS)
	node dist/bench/streaming/main.js --quick --out .tap/bench-quick

# Configurations f and f_d with a reference written in Go (google.golang.org/grpc + go-control-plane):
# b's and d's ext_proc message exchanges with no work done, so the report separates the protocol's
# cost from the guard's.
GO_PEER := .tools/go-extproc-peer
GO_PEER_ADDR ?= 127.0.0.1:50099
.PHONY: bench-vs-go
$(GO_PEER): bench/peers/go-extproc/main.go bench/peers/go-extproc/go.mod bench/peers/go-extproc/go.sum
	cd bench/peers/go-extproc && go build -o $(CURDIR)/$(GO_PEER) .

## make bench plus f and f_d = the Go reference ext_proc server exchanging b's and d's messages
bench-vs-go: build envoy system-deps $(GO_PEER)
	node dist/bench/pipeline/main.js --peer-cmd '$(CURDIR)/$(GO_PEER) -addr $(GO_PEER_ADDR)' \
		--peer-bodies-cmd '$(CURDIR)/$(GO_PEER) -addr $(GO_PEER_ADDR) -bodies' --peer-addr $(GO_PEER_ADDR) $(BENCH_ARGS)

## The ext_proc transport alone (h2load as Envoy, no Envoy): the guard beside the Go reference peer
.PHONY: bench-transport
bench-transport: build system-deps $(GO_PEER)
	node dist/bench/transport/main.js --peer-cmd '$(CURDIR)/$(GO_PEER) -addr $(GO_PEER_ADDR)' --peer-addr $(GO_PEER_ADDR) --peer-name 'Go reference (grpc-go)' $(TRANSPORT_ARGS)

# Streamed (SSE) answers: Envoy alone, the Go reference peer exchanging the guard's stream messages
# with no work (-stream), the guard with a model its contract does not bind, incremental + shadow and
# incremental + enforce, each at 50 and 200 concurrent streams, 3 interleaved runs (~6 minutes;
# add full = config/default.yaml with STREAMING_ARGS="--only envoy,peer,unbound,shadow,enforce,full").
# Writes bench/results/streaming-<date>.json and .md. Extra options: STREAMING_ARGS, e.g.
# STREAMING_ARGS="--only envoy,enforce,full --runs 1" or "--cpu-prof /tmp/prof".
GO_PEER_STREAM_ADDR ?= 127.0.0.1:50098
.PHONY: bench-streaming bench-streaming-quick

## Streamed answers: added time to first token, inter-event gaps, CPU per event beside Envoy alone and the Go peer
bench-streaming: build envoy $(GO_PEER)
	node dist/bench/streaming/main.js --peer-cmd '$(CURDIR)/$(GO_PEER) -addr $(GO_PEER_STREAM_ADDR) -stream' \
		--peer-addr $(GO_PEER_STREAM_ADDR) --peer-name 'Go reference (grpc-go)' $(STREAMING_ARGS)

## Every streaming configuration once at a toy load (seconds): checks the harness, not the guard
bench-streaming-quick: build envoy $(GO_PEER)
	node dist/bench/streaming/main.js --quick --out .tap/bench-quick --peer-cmd '$(CURDIR)/$(GO_PEER) -addr $(GO_PEER_STREAM_ADDR) -stream' \
		--peer-addr $(GO_PEER_STREAM_ADDR) --peer-name 'Go reference (grpc-go)' $(STREAMING_ARGS)

# The complexity stage's latency model (issue 17): median |predicted − actual| / actual on the demo
# workload (the shed benchmark's mix), the first model (RLS) beside the current one on the same
# samples: in process (the demo's latency function and batcher in virtual time, seconds), then live
# through Envoy + guard + demo model (~4 minutes; LATENCY_MODEL_ARGS="--no-live" skips it). Writes
# bench/results/latency-model-<date>.json.
.PHONY: bench-latency-model
bench-latency-model: build envoy
	node dist/bench/latency-model.js $(LATENCY_MODEL_ARGS)
