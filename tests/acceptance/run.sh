#!/usr/bin/env bash
# `make acceptance` and `make acceptance-cleanup`: runs kms-acceptance against the deployed
# stack. Nothing here calls AWS before the harness's own opt-in check passes.
#
#   run.sh journeys   the journeys, cleanup, the report (target/acceptance/report.json)
#   run.sh cleanup    cleans up what an interrupted run left (target/acceptance/ledger.json)
#
# Read from the environment:
#   KMS_REPLICATOR_ACCEPTANCE=1   the opt-in; without it the harness refuses and exits 2
#   AWS_PROFILE, AWS_REGION       the credentials and the home Region (the stack's), as the
#                                 AWS CLI and the SAM CLI read them
#   REPLICA_REGIONS               where to replicate, e.g. "us-west-2 eu-west-1" (in the stack's
#                                 AllowedRegions; the first is the failover target, the last of
#                                 two or more is taken out of the tag by the Region removal step)
#   REMOVAL_POLICY                the stack's RemovalPolicy: Retain (default) or ScheduleDeletion
#   FAILOVER_FUNCTION, RECONCILE_FUNCTION
#                                 the functions' names or ARNs; without FAILOVER_FUNCTION they
#                                 are read with `sam list stack-outputs --stack-name $STACK_NAME`
#   STACK_NAME                    default kms-replicator (samconfig.toml's)
#   ACCEPTANCE_WAIT               the bound of each wait for the replicator, default 10m
#   ACCEPTANCE_BIN                the kms-acceptance binary (the Makefile passes it)
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${ACCEPTANCE_BIN:?ACCEPTANCE_BIN names the kms-acceptance binary}
out=$(dirname "$bin")/../acceptance
mode=${1:-journeys}

if [ "${KMS_REPLICATOR_ACCEPTANCE:-}" != 1 ]; then
    exec "$bin"  # says why it refuses, and exits 2
fi

common=()
[ -n "${AWS_PROFILE:-}" ] && common+=(--profile "$AWS_PROFILE")
[ -n "${AWS_REGION:-}" ] && common+=(--region "$AWS_REGION")

if [ "$mode" = cleanup ]; then
    exec "$bin" --cleanup --ledger "$out/ledger.json" "${common[@]}"
fi

if [ -z "${REPLICA_REGIONS:-}" ]; then
    echo 'error: set REPLICA_REGIONS to the Regions to replicate to, e.g. REPLICA_REGIONS="us-west-2 eu-west-1"' >&2
    exit 2
fi
mkdir -p "$out"
args=(--replica-regions "$REPLICA_REGIONS"
      --removal-policy "${REMOVAL_POLICY:-Retain}"
      --wait "${ACCEPTANCE_WAIT:-10m}"
      --report "$out/report.json"
      --ledger "$out/ledger.json")
if [ -n "${FAILOVER_FUNCTION:-}" ]; then
    args+=(--failover-function "$FAILOVER_FUNCTION")
    [ -n "${RECONCILE_FUNCTION:-}" ] && args+=(--reconcile-function "$RECONCILE_FUNCTION")
else
    sam=$(command -v sam || echo .venv/bin/sam)
    if [ ! -x "$sam" ]; then
        echo "error: no SAM CLI (sam on PATH or .venv/bin/sam) to read the stack's outputs; set FAILOVER_FUNCTION (and RECONCILE_FUNCTION) instead" >&2
        exit 2
    fi
    sam_args=(list stack-outputs --stack-name "${STACK_NAME:-kms-replicator}" --output json)
    [ -n "${AWS_PROFILE:-}" ] && sam_args+=(--profile "$AWS_PROFILE")
    [ -n "${AWS_REGION:-}" ] && sam_args+=(--region "$AWS_REGION")
    "$sam" "${sam_args[@]}" > "$out/stack-outputs.json"
    args+=(--stack-outputs "$out/stack-outputs.json")
fi
exec "$bin" "${args[@]}" "${common[@]}"
