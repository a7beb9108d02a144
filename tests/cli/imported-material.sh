#!/usr/bin/env bash
# A walkthrough with the AWS CLI and openssl against `make twin` (docs/local-cloud.md,
# "Imported key material"): a multi-Region key with material of the person's own (origin
# EXTERNAL), tagged for us-west-2. The replicator creates the replica and says it waits for the
# material; the person imports the same material there, as the outcome says; then the replica
# decrypts what the primary encrypted.
#
#   make twin                                  # in one shell; it prints KMS_TWIN_ENDPOINT=...
#   AWS_ENDPOINT_URL=http://127.0.0.1:PORT tests/cli/imported-material.sh
#
# AWS (default `aws`) names the CLI. Exits non-zero, saying why, if any step does not end as
# described; tests/tests/cli_walkthrough.rs runs it in `make test`.
set -euo pipefail
: "${AWS_ENDPOINT_URL:?set AWS_ENDPOINT_URL to the endpoint make twin printed}"
export AWS_ENDPOINT_URL AWS_ACCESS_KEY_ID=admin AWS_SECRET_ACCESS_KEY=x \
    AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_PAGER=""
aws=${AWS:-aws}
command -v openssl >/dev/null || { echo "FAILED: openssl is needed to wrap the key material" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

step() { printf '\n== %s\n' "$*"; }
fail() { echo "FAILED: $*" >&2; exit 1; }
state() { "$aws" kms describe-key --region "$1" --key-id "$key" --query KeyMetadata.KeyState --output text; }
# Imports $work/material.bin into the key in Region $1, as the KMS Developer Guide describes:
# a wrapping key and import token of that Region's key, the material wrapped with openssl.
import() {
    "$aws" kms get-parameters-for-import --region "$1" --key-id "$key" \
        --wrapping-algorithm RSAES_OAEP_SHA_256 --wrapping-key-spec RSA_4096 > "$work/params.json"
    python3 - "$work" <<'PY'
import base64, json, sys
d = sys.argv[1]
p = json.load(open(f"{d}/params.json"))
open(f"{d}/pub.der", "wb").write(base64.b64decode(p["PublicKey"]))
open(f"{d}/token.bin", "wb").write(base64.b64decode(p["ImportToken"]))
PY
    openssl pkeyutl -encrypt -in "$work/material.bin" -out "$work/wrapped.bin" \
        -inkey "$work/pub.der" -keyform DER -pubin -pkeyopt rsa_padding_mode:oaep \
        -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256
    "$aws" kms import-key-material --region "$1" --key-id "$key" \
        --encrypted-key-material "fileb://$work/wrapped.bin" --import-token "fileb://$work/token.bin" \
        --expiration-model KEY_MATERIAL_DOES_NOT_EXPIRE
}

step "A multi-Region key for imported material in us-east-1: PendingImport until it has some"
key=$("$aws" kms create-key --multi-region --origin EXTERNAL --description backups \
    --query KeyMetadata.KeyId --output text)
echo "$key: $(state us-east-1)"
[ "$(state us-east-1)" = PendingImport ] || fail "a new EXTERNAL key is not PendingImport"

step "The person's own 256-bit material, imported into the primary"
openssl rand -out "$work/material.bin" 32
import us-east-1
echo "us-east-1: $(state us-east-1)"
[ "$(state us-east-1)" = Enabled ] || fail "the primary is not Enabled after the import"

step "Tagged for us-west-2: the replicator creates the replica, which waits for its material"
"$aws" kms tag-resource --key-id "$key" --tags TagKey=replicate-to,TagValue=us-west-2
curl -sS -X POST "$AWS_ENDPOINT_URL/_twin/settle" >/dev/null
echo "us-west-2: $(state us-west-2)"
[ "$(state us-west-2)" = PendingImport ] || fail "the replica is not PendingImport"
curl -sS "$AWS_ENDPOINT_URL/_twin/audit" > "$work/audit.json"
python3 - "$work/audit.json" <<'PY' || fail "no conflict told us-west-2 how to import"
import json, sys
said = [c for e in json.load(open(sys.argv[1]))
        if e["detail-type"] == "Replication Conflict"
        for c in e["detail"].get("conflicts", [])
        if "us-west-2 is PendingImport" in c]
print("the replicator says:", said[0][:160], "...")
sys.exit(0 if said and "import-key-material --region us-west-2" in said[0] else 1)
PY
dead=$(curl -sS "$AWS_ENDPOINT_URL/_twin/dead-letters")
[ "$dead" = "[]" ] || fail "events were dead-lettered: $dead"

step "Other material is refused in us-west-2; the primary's is accepted"
cp "$work/material.bin" "$work/ours.bin"
openssl rand -out "$work/material.bin" 32
if import us-west-2 2>"$work/err.txt"; then fail "other material was accepted"; fi
grep -o IncorrectKeyMaterialException "$work/err.txt" | head -1
cp "$work/ours.bin" "$work/material.bin"
import us-west-2
echo "us-west-2: $(state us-west-2)"
[ "$(state us-west-2)" = Enabled ] || fail "the replica is not Enabled after the import"

step "Encrypt in us-east-1, decrypt with the replica in us-west-2"
printf 'nightly backup' > "$work/plain.txt"   # fileb:// reads raw bytes in AWS CLI v1 and v2 alike
"$aws" kms encrypt --key-id "$key" --plaintext "fileb://$work/plain.txt" \
    --query CiphertextBlob --output text | base64 -d > "$work/blob.bin"
plain=$("$aws" kms decrypt --region us-west-2 --ciphertext-blob "fileb://$work/blob.bin" \
    --query Plaintext --output text | base64 -d)
echo "us-west-2 decrypted: $plain"
[ "$plain" = "nightly backup" ] || fail "the replica did not decrypt"
echo
echo "OK: the replica of an imported-material key waited, was told how, and decrypts once imported"
