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
	cargo clippy --workspace --all-targets -- -D warnings

## The end-to-end tests run the real function binaries, so build them first.
test-rust:
	cargo build --workspace --bins
	cargo test --workspace

## `sam build` for arm64 with cargo-lambda and Zig from PyPI, then checks each bootstrap.
sam-build:
	tests/eventbridge/sam-build.sh
