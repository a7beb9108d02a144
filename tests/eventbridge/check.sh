#!/usr/bin/env bash
# Offline checks of template.yaml and forwarder.yaml: cfn-lint, `sam validate --lint`, and pytest on tests/eventbridge/
# (the EventBridge rule's pattern, read from the template, evaluated by moto's event-pattern
# matcher against the CloudTrail fixtures; parameters, IAM statements and wiring).
# Needs Python 3.11+ and PyPI; no AWS account or credentials. Exits non-zero on the first failure.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
# shellcheck source=tests/eventbridge/venv.sh
source tests/eventbridge/venv.sh

# Nothing here talks to AWS; keep the SDKs from looking for credentials or an instance role.
export SAM_CLI_TELEMETRY=0 AWS_EC2_METADATA_DISABLED=true
export PYTHONDONTWRITEBYTECODE=1

echo "==> [1/4] Python tools in .venv (requirements-dev.txt)"
ensure_venv requirements-dev.txt
BIN="$ROOT/.venv/bin"

echo "==> [2/4] cfn-lint template.yaml forwarder.yaml (errors, warnings and informational checks)"
"$BIN/cfn-lint" --include-checks I -- template.yaml forwarder.yaml
echo "    cfn-lint: no findings"

echo "==> [3/4] sam validate --lint --region us-east-1"
"$BIN/sam" validate --lint --region us-east-1 --template-file template.yaml

echo "==> [4/4] pytest tests/eventbridge"
exec "$BIN/python" -m pytest -p no:cacheprovider tests/eventbridge "$@"
