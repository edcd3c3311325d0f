#!/usr/bin/env bash
# Compile the rtrlib cffi module (rpki/_rtrlib_cffi*.so, git-ignored) against Debian's librtr-dev.
# Idempotent: does nothing when the module is newer than its build recipe.
set -euo pipefail
ROOT=${ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$ROOT"
so=$(ls rpki/_rtrlib_cffi*.so 2>/dev/null | head -1 || true)
if [[ -n "$so" && "$so" -nt rpki/_rtrlib_build.py ]]; then
  exit 0
fi
[[ -e /usr/include/rtrlib/rtrlib.h ]] || { echo "20-rtrlib: librtr-dev missing (apt-get install librtr-dev)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
built=$(.venv/bin/python rpki/_rtrlib_build.py "$tmp")
cp "$built" rpki/
echo "20-rtrlib: built rpki/$(basename "$built")"
