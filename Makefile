# meshrr: every target is one line; `make help` lists them.
SHELL := /bin/bash
GO ?= go
GOTEST_FLAGS ?= -count=1
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
IMAGE_TAG ?= dev
AGENT_IMAGE ?= meshrr/agent:$(IMAGE_TAG)
BIRD_IMAGE ?= meshrr/bird:$(IMAGE_TAG)
# local base with BIRD preinstalled, built by debootstrap; BASE_IMAGE=debian:bookworm-slim with a registry
BASE_IMAGE ?= meshrr/base:bookworm
DOCKER_BUILD = DOCKER_BUILDKIT=0 docker build -q

.PHONY: help test deps unit lint bench fuzz build base images images-smoke

help: ## list targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

test: deps lint unit images-smoke ## everything CI runs: host deps, vet, unit + BIRD integration tests, images

deps: ## install what the tests need (bird2, docker.io, debootstrap) and start dockerd when missing
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

build: ## build the static agent binary into bin/
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X github.com/meshrr/meshrr/agent/internal/app.Version=$(VERSION)" -o bin/meshrr-agent ./agent/cmd/meshrr-agent

base: ## local base image (debootstrap + docker import; skipped when up to date)
	@if [ "$(BASE_IMAGE)" = meshrr/base:bookworm ]; then tests/tools/make-base.sh $(BASE_IMAGE); fi

images: build base ## agent and BIRD images, no registry needed
	$(DOCKER_BUILD) --target agent -t $(AGENT_IMAGE) .
	$(DOCKER_BUILD) --target bird --build-arg BASE=$(BASE_IMAGE) -t $(BIRD_IMAGE) .

images-smoke: images ## run the images as a pod would (init, BIRD, non-root socket access)
	@tests/tools/images-smoke.sh $(AGENT_IMAGE) $(BIRD_IMAGE)
