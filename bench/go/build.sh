#!/bin/sh
# Builds bench/go/yamux-bench (the Go side of bench/go-yamux.ts) with Debian's Go and hashicorp/yamux, as the
# interop peer is built (test/interop/go/build.sh, which checks for both and says what to install).
# Usage: build.sh [OUTPUT]  (default: <repo>/.cache/bench/yamux-bench)
# Rebuilds only when a source file is newer than OUTPUT. Prints OUTPUT's path on success.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
exec "$repo/test/interop/go/build.sh" "${1:-"$repo/.cache/bench/yamux-bench"}" "$here/yamux-bench"
