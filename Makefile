# meshrr: every target is one line; `make help` lists them.
SHELL := /bin/bash
GO ?= go
GOTEST_FLAGS ?= -count=1

.PHONY: help test deps unit lint bench fuzz build

help: ## list targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

test: deps lint unit ## everything CI runs: host deps, vet, unit + BIRD integration tests

deps: ## install what the tests need (bird2) when missing
	@tests/tools/host-deps.sh

lint: ## go vet and gofmt check
	$(GO) vet ./...
	@test -z "$$(gofmt -l agent tests)" || { gofmt -l agent tests; echo "gofmt needed"; exit 1; }

unit: ## unit, golden and real-BIRD integration tests
	$(GO) test $(GOTEST_FLAGS) ./...

bench: ## benchmarks with allocations (numbers for the issue notes)
	$(GO) test -run '^$$' -bench . -benchmem ./agent/...

fuzz: ## fuzz the birdc output parser for 30s
	$(GO) test -run '^$$' -fuzz FuzzParseProtocols -fuzztime 30s ./agent/internal/backend/bird/

build: ## build the agent binary into bin/
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/meshrr-agent ./agent/cmd/meshrr-agent
