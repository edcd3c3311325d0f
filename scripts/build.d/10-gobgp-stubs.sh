#!/usr/bin/env bash
# Generate the GoBGP 3.10 gRPC stubs (appliance/speakers/gobgp_pb/, git-ignored) from Debian's
# golang-github-osrg-gobgp-dev protos, with .pyi files for mypy (packaging/gobgp_stubs.py; a wheel gets
# its own copy from setup.py's build step).
# Idempotent: skipped when the stamp matches the protos and the grpcio-tools version.
set -euo pipefail
ROOT=${ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$ROOT"
PROTO_DIR=${GOBGP_PROTO_DIR:-/usr/share/gocode/src/github.com/osrg/gobgp/api}
OUT=appliance/speakers/gobgp_pb
PROTOS=(gobgp.proto attribute.proto capability.proto)  # packaging/gobgp_stubs.py PROTOS
[[ -e "$PROTO_DIR/gobgp.proto" ]] || {
  echo "10-gobgp-stubs: $PROTO_DIR/gobgp.proto missing (apt-get install golang-github-osrg-gobgp-dev)" >&2; exit 1; }
want=$( (cd "$PROTO_DIR" && cat "${PROTOS[@]}"; "$ROOT/.venv/bin/python" -c 'import grpc_tools, importlib.metadata as m; print(m.version("grpcio-tools"))') | sha256sum | cut -d' ' -f1)
if [[ -f "$OUT/.stamp" && "$(cat "$OUT/.stamp")" == "$want" ]]; then
  exit 0
fi
"$ROOT/.venv/bin/python" packaging/gobgp_stubs.py "$OUT" "$PROTO_DIR"  # the same generator setup.py uses
echo "$want" > "$OUT/.stamp"
echo "10-gobgp-stubs: generated $OUT"
