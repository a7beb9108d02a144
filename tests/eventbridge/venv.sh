# shellcheck shell=bash
# Sourced by check.sh and sam-build.sh: the Python tools live in .venv at the repository root.
#
# ensure_venv FILE...   creates .venv if it is missing and installs the pinned requirement FILEs
#                       (relative to the repository root) with tests/eventbridge/constraints.txt.
#                       A FILE is skipped when the stamp stored in .venv for it still matches the
#                       hash of FILE, of the constraints and of the Python version, so a second run
#                       does not call pip at all.

ensure_venv() {
    local root venv python constraints file stamp want pending=()
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
    venv="$root/.venv"
    constraints="$root/tests/eventbridge/constraints.txt"
    python="${PYTHON:-python3}"

    if [ ! -x "$venv/bin/python" ]; then
        "$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || {
            echo "error: Python 3.11 or newer is needed ($python is $("$python" --version 2>&1)); set PYTHON=..." >&2
            return 1
        }
        "$python" -m venv "$venv"
    fi

    for file in "$@"; do
        stamp="$venv/.stamp-$(basename "$file")"
        want="$(cat "$root/$file" "$constraints" | sha256sum | cut -d' ' -f1) $("$venv/bin/python" -V 2>&1)"
        if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
            pending+=("$file")
        fi
    done
    if [ ${#pending[@]} -eq 0 ]; then
        echo "    .venv already has the pinned versions of: $*"
        return 0
    fi

    local args=() started=$SECONDS
    for file in "${pending[@]}"; do args+=(-r "$root/$file"); done
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${args[@]}" -c "$constraints"
    for file in "${pending[@]}"; do
        want="$(cat "$root/$file" "$constraints" | sha256sum | cut -d' ' -f1) $("$venv/bin/python" -V 2>&1)"
        echo "$want" >"$venv/.stamp-$(basename "$file")"
    done
    echo "    installed ${pending[*]} into .venv in $((SECONDS - started)) s"
}
