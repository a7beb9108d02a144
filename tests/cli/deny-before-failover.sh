#!/usr/bin/env bash
# A walkthrough with the AWS CLI against `make twin` (docs/local-cloud.md, "A Deny added just
# before a failover"): a key replicated to us-west-2, a transient failure on the replica's
# PutKeyPolicy, a Deny added to the primary, then a failover to us-west-2. The failover refuses
# while the Deny cannot reach us-west-2, and once it can, promotes with the Deny in both Regions.
#
#   make twin                                  # in one shell; it prints KMS_TWIN_ENDPOINT=...
#   AWS_ENDPOINT_URL=http://127.0.0.1:PORT tests/cli/deny-before-failover.sh
#
# AWS (default `aws`, AWS CLI v1 or v2) names the CLI. Exits non-zero, saying why, if any step
# does not end as described; tests/tests/cli_walkthrough.rs runs it in `make test`.
set -euo pipefail
: "${AWS_ENDPOINT_URL:?set AWS_ENDPOINT_URL to the endpoint make twin printed}"
export AWS_ENDPOINT_URL AWS_ACCESS_KEY_ID=admin AWS_SECRET_ACCESS_KEY=x \
    AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_PAGER=""
aws=${AWS:-aws}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

step() { printf '\n== %s\n' "$*"; }
fail() { echo "FAILED: $*" >&2; exit 1; }
twin() { curl -sS -X "$1" "$AWS_ENDPOINT_URL/_twin/$2" ${3:+-d "$3"}; echo; }
# The JSON value at a path in a file: json FILE 'keys 0 outcome'.
json() {
    python3 - "$@" <<'PY'
import json, sys
v = json.load(open(sys.argv[1]))
for p in sys.argv[2].split():
    v = v[int(p)] if isinstance(v, list) else v.get(p)
print(v if isinstance(v, str) else json.dumps(v))
PY
}
# Whether the key's policy in a Region holds the statement NoExporter.
has_deny() {
    "$aws" kms get-key-policy --region "$1" --key-id "$key" --policy-name default \
        --query Policy --output text | grep -q '"NoExporter"'
}
# Invokes the failover function with a payload, answer in $work/out.json.
failover() {
    "$aws" lambda invoke --function-name failover --payload "$1" "$work/out.json" >/dev/null
    python3 - "$work/out.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
k = r["keys"][0]
print(r["summary"], "|", k["outcome"], k.get("cause") or "")
for c in k["checks"]:
    if c["name"] == "target_up_to_date":
        print("target_up_to_date:", c["passed"], "-", c["detail"])
PY
}

step "A multi-Region key in us-east-1, tagged to be replicated to us-west-2"
key=$("$aws" kms create-key --multi-region --description payments \
    --tags TagKey=replicate-to,TagValue=us-west-2 --query KeyMetadata.KeyId --output text)
echo "$key"
twin POST settle >/dev/null
"$aws" kms describe-key --region us-west-2 --key-id "$key" \
    --query 'KeyMetadata.[KeyState,MultiRegionConfiguration.MultiRegionKeyType]' --output text
[ "$("$aws" kms describe-key --region us-west-2 --key-id "$key" --query KeyMetadata.KeyState --output text)" = Enabled ] \
    || fail "the replica in us-west-2 is not Enabled"

step "The replica's PutKeyPolicy fails for a while (any transient failure, or a late record)"
twin POST fault '{"code":"KMSInternalException","region":"us-west-2","operation":"PutKeyPolicy","times":100}'

step "A person adds a Deny kms:Decrypt for a role to the primary's policy in us-east-1"
"$aws" kms get-key-policy --key-id "$key" --policy-name default --query Policy --output text > "$work/policy.json"
python3 - "$work/policy.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
p["Statement"].append({
    "Sid": "NoExporter", "Effect": "Deny",
    "Principal": {"AWS": "arn:aws:iam::111122223333:role/exporter"},
    "Action": "kms:Decrypt", "Resource": "*",
})
json.dump(p, open(sys.argv[1], "w"))
PY
"$aws" kms put-key-policy --key-id "$key" --policy-name default --policy "file://$work/policy.json"
has_deny us-east-1 || fail "the Deny is not on the primary"

step "On call: fail over to us-west-2 while the Deny cannot reach it"
failover "{\"key\":\"$key\",\"to\":\"us-west-2\"}"
[ "$(json "$work/out.json" 'keys 0 outcome')" = failed ] || fail "the failover did not refuse"
[ "$(json "$work/out.json" 'keys 0 cause')" = target_not_up_to_date ] || fail "refused for another cause"
[ "$("$aws" kms describe-key --key-id "$key" --query KeyMetadata.MultiRegionConfiguration.PrimaryKey.Region --output text)" = us-east-1 ] \
    || fail "the primary moved"
has_deny us-east-1 || fail "the Deny is gone from us-east-1"
echo "refused: not promoted, and the Deny is still on the primary in us-east-1"

step "The failure ends; the same failover request promotes, with the Deny in both Regions"
twin DELETE fault
failover "{\"key\":\"$key\",\"to\":\"us-west-2\"}"
[ "$(json "$work/out.json" 'keys 0 outcome')" = promoted ] || fail "the failover did not promote"
[ "$("$aws" kms describe-key --region us-west-2 --key-id "$key" --query KeyMetadata.MultiRegionConfiguration.MultiRegionKeyType --output text)" = PRIMARY ] \
    || fail "us-west-2 is not the primary"
twin POST settle >/dev/null
for r in us-east-1 us-west-2; do
    has_deny "$r" || fail "the Deny is gone in $r"
    echo "$r: the Deny is there"
done
echo
echo "OK: the Deny survived the failover in every Region"
