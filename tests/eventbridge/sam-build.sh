#!/usr/bin/env bash
# `sam build` of the three Rust functions with cargo-lambda and Zig from .venv (PyPI), then a check
# that .aws-sam/build/<Function>/bootstrap is an executable 64-bit ELF for the template's
# architecture (arm64 -> aarch64).
#
# Usage: tests/eventbridge/sam-build.sh [--arch x86_64]
#   --arch x86_64  builds a copy of the template with Architectures [x86_64] into
#                  .aws-sam/build-x86_64, for machines that cannot install the Rust standard
#                  library for aarch64-unknown-linux-gnu. It checks the build pipeline only:
#                  deploy the arm64 build in .aws-sam/build.
# Needs Python 3.11+, PyPI, and a Rust toolchain (rustup) with the target's standard library.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
# shellcheck source=tests/eventbridge/venv.sh
source tests/eventbridge/venv.sh

ARCH=arm64
while [ $# -gt 0 ]; do
    case "$1" in
        --arch) ARCH="${2:?--arch needs arm64 or x86_64}"; shift 2 ;;
        -h | --help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
case "$ARCH" in
    arm64) TRIPLE=aarch64-unknown-linux-gnu; TEMPLATE=template.yaml; BUILD_DIR=.aws-sam/build ;;
    x86_64) TRIPLE=x86_64-unknown-linux-gnu; TEMPLATE=.aws-sam/template-x86_64.yaml; BUILD_DIR=.aws-sam/build-x86_64 ;;
    *) echo "--arch must be arm64 or x86_64, not $ARCH" >&2; exit 2 ;;
esac

export SAM_CLI_TELEMETRY=0 AWS_EC2_METADATA_DISABLED=true PYTHONDONTWRITEBYTECODE=1

echo "==> [1/4] Python tools in .venv (requirements-dev.txt, requirements-build.txt)"
ensure_venv requirements-dev.txt requirements-build.txt
# SAM finds cargo-lambda on PATH, and cargo-lambda finds Zig as `python3 -m ziglang`.
export VIRTUAL_ENV="$ROOT/.venv"
export PATH="$VIRTUAL_ENV/bin:$PATH"
echo "    $(cargo-lambda lambda --version), zig $(python3 -m ziglang version), $(sam --version)"

echo "==> [2/4] Rust standard library for $TRIPLE"
if ! command -v cargo >/dev/null; then
    echo "error: cargo not found; install Rust with rustup" >&2
    exit 1
fi
if command -v rustup >/dev/null; then
    if ! rustup target list --installed | grep -qx "$TRIPLE"; then
        rustup target add "$TRIPLE" || {
            echo "error: could not install the $TRIPLE standard library (rustup target add needs" >&2
            echo "       the Rust distribution server). On a machine that has only the host target," >&2
            echo "       '$0 --arch x86_64' checks the rest of the pipeline." >&2
            exit 1
        }
    fi
    echo "    $TRIPLE installed"
else
    echo "    rustup not found; assuming the toolchain has $TRIPLE"
fi

if [ "$ARCH" = x86_64 ]; then
    mkdir -p .aws-sam
    grep -q '^    Architectures: \[arm64\]$' template.yaml
    sed 's/^    Architectures: \[arm64\]$/    Architectures: [x86_64]/' template.yaml >"$TEMPLATE"
    echo "    NOTE: building an x86_64 copy of the template into $BUILD_DIR (the stack deploys arm64)"
fi

echo "==> [3/4] sam build ($ARCH) into $BUILD_DIR"
started=$SECONDS
# SAM's cargo-lambda build takes no --locked; this refuses a Cargo.lock that is not up to date,
# so the packages are built from exactly the versions it pins.
cargo fetch --locked --quiet
sam build --template-file "$TEMPLATE" --base-dir "$ROOT" --build-dir "$BUILD_DIR"
echo "    sam build took $((SECONDS - started)) s"

echo "==> [4/4] $BUILD_DIR/<Function>/bootstrap is an executable ELF for $ARCH"
python3 - "$BUILD_DIR" "$ARCH" <<'EOF'
import os
import struct
import sys

from cfnlint.decode import decode

build_dir, arch = sys.argv[1], sys.argv[2]
machine_wanted = {"arm64": (183, "aarch64"), "x86_64": (62, "x86-64")}[arch]
template, matches = decode("template.yaml")
if matches:
    sys.exit(f"template.yaml does not parse: {matches}")
functions = sorted(
    name
    for name, res in template["Resources"].items()
    if res.get("Type") == "AWS::Serverless::Function"
    and res.get("Metadata", {}).get("BuildMethod") == "rust-cargolambda"
)
failures = 0
for name in functions:
    path = os.path.join(build_dir, name, "bootstrap")
    problem = None
    if not os.path.isfile(path):
        problem = "missing"
    else:
        with open(path, "rb") as f:
            header = f.read(20)
        if len(header) < 20 or header[:4] != b"\x7fELF":
            problem = "not an ELF file"
        elif header[4] != 2 or header[5] != 1:
            problem = "not a 64-bit little-endian ELF"
        else:
            (machine,) = struct.unpack_from("<H", header, 18)
            if machine != machine_wanted[0]:
                problem = f"ELF machine {machine}, expected {machine_wanted[0]} ({machine_wanted[1]})"
            elif not os.access(path, os.X_OK):
                problem = "not executable"
    if problem:
        failures += 1
        print(f"    FAIL {path}: {problem}")
    else:
        size = os.path.getsize(path) / 1e6
        print(f"    ok   {path}: ELF {machine_wanted[1]}, executable, {size:.1f} MB")
if not functions:
    sys.exit("no rust-cargolambda functions found in template.yaml")
sys.exit(1 if failures else 0)
EOF
