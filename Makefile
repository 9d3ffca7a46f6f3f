# Every command a user or CI runs. `make help` lists them.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

GO          ?= go
CERTS_DIR   ?= ./certs
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
CDK_DIR     := infra/cdk
CDK_ENV     := CDK_DISABLE_VERSION_CHECK=1 CDK_DISABLE_CLI_TELEMETRY=1
GOTESTFLAGS ?=
# The archivist's store for demo and run-agents: sqlite (a file under
# .local/) or postgres (a throwaway local PostgreSQL cluster).
ARCHIVE     ?= sqlite

export CERTS_DIR ARCHIVE

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

.PHONY: test
test: fmt-check vet lint test-go fuzz-short test-infra ## every check CI runs: gofmt, go vet, staticcheck, go test -race, a short fuzz run, and the CDK checks

.PHONY: fmt-check
fmt-check: ## fail when a Go file is not gofmt'ed
	@out=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi; echo "gofmt: ok"

.PHONY: vet
vet: ## go vet
	$(GO) vet ./...

.PHONY: lint
lint: ## staticcheck (pinned)
	$(GO) run $(STATICCHECK) ./...

.PHONY: test-go
test-go: ## go test -race over the root module
	$(GO) test -race -count=1 $(GOTESTFLAGS) ./...

# FUZZ_SHORT lists the fuzz targets of fuzz-short as PACKAGE:TARGET:RUNS:
# the sandboxed worker entry point, then every parser of bytes that come
# from the network or a document (about a minute of fuzzing in all on 2
# cores). The budgets are counts of runs, not durations: Go 1.26's fuzzing
# coordinator may report "context deadline exceeded" as a failure when a
# -fuzztime duration ends while a worker is busy (go.dev/issue/75804), which
# a loaded CI machine makes likely; a count has no deadline to race.
FUZZ_SHORT := \
	./agentsvc/agents/extractor:FuzzWorker:60 \
	./agentsvc/agents/extractor:FuzzParseCSV:10000 \
	./shared/certload:FuzzParse:20000 \
	./shared/certload:FuzzParseCRLs:40000 \
	./shared/binding:FuzzVerify:30000 \
	./shared/binding:FuzzBearerToken:50000 \
	./shared/binding:FuzzParseMatchesJWTParser:40000 \
	./shared/binding:FuzzClaimsDecode:40000 \
	./shared/binding:FuzzHeaderDecode:30000 \
	./shared/a2askill:FuzzParseSend:60000 \
	./agentsvc/agents/archivist:FuzzArchiveParams:15000 \
	./lambda:FuzzParseMessage:10000 \
	./internal/sandbox:FuzzDecodeFrame:100000

.PHONY: fuzz-short
fuzz-short: ## a bounded fuzz run of the worker entry point and the byte parsers (FUZZ_SHORT)
	@for spec in $(FUZZ_SHORT); do \
	  IFS=: read -r pkg target runs <<<"$$spec"; \
	  echo "fuzz $$target in $$pkg for $$runs runs"; \
	  out=$$($(GO) test -run='^$$' -fuzz="^$$target\$$" -fuzztime="$${runs}x" -timeout=10m "$$pkg" 2>&1) || { echo "$$out"; exit 1; }; \
	  echo "$$out" | grep -v '^fuzz: elapsed'; \
	  if grep -q 'no fuzz tests to fuzz' <<<"$$out"; then echo "fuzz-short: $$pkg has no $$target"; exit 1; fi; \
	done

.PHONY: test-infra
test-infra: ## CDK checks: assertions, cdk-nag AwsSolutions, bundled synth + cfn-lint (offline)
	cd $(CDK_DIR) && $(GO) vet ./... && $(GO) run $(STATICCHECK) ./... && $(GO) test -race -count=1 $(GOTESTFLAGS) ./...

.PHONY: synth
synth: ## CDK templates into infra/cdk/cdk.out (offline: no AWS account, no Docker)
	cd $(CDK_DIR) && npm ci --no-audit --no-fund --loglevel=error
	cd $(CDK_DIR) && $(CDK_ENV) npx --no-install cdk synth --quiet

.PHONY: certs
certs: ## generate the CA and agent certificates into CERTS_DIR (kept if present)
	$(GO) run ./cmd/certgen --certs-dir $(CERTS_DIR)

.PHONY: demo
demo: ## the whole system on loopback: certs, moto, IdP, agents, Lambda under the emulator, the attack; then stop (ARCHIVE=postgres: archive on a throwaway PostgreSQL)
	$(GO) run ./dev/local demo

.PHONY: run-agents
run-agents: ## start moto_server, the local identity provider and the four agents on 127.0.0.1 until Ctrl-C (ARCHIVE=postgres too)
	$(GO) run ./dev/local run-agents

.PHONY: idp
idp: ## the local identity provider alone, in the foreground, on 127.0.0.1:$${IDP_PORT:-8443}
	$(GO) run ./cmd/certgen --certs-dir $(CERTS_DIR) >/dev/null
	CERTS_DIR=$(CERTS_DIR) IDP_STATE_DIR=./.local/idp bash dev/idp/run.sh

.PHONY: invoke
invoke: ## run EVENT (default events/s3-put.json) through the Lambda bootstrap under the Runtime Interface Emulator (needs make run-agents)
	$(GO) run ./dev/local invoke $(or $(EVENT),events/s3-put.json)

.PHONY: bench
bench: ## loopback measurements as side-by-side ratios into bench/results/ (installs nginx with apt-get when root)
	GO=$(GO) bash bench/run.sh

.PHONY: lambda
lambda: ## build the Lambda bootstrap for provided.al2023 (arm64 and amd64) into dist/
	for arch in arm64 amd64; do \
	  GOOS=linux GOARCH=$$arch CGO_ENABLED=0 $(GO) build -trimpath -tags lambda.norpc -o dist/lambda-$$arch/bootstrap ./cmd/lambda; \
	done
	@ls -l dist/lambda-*/bootstrap
