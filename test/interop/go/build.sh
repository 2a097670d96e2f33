#!/bin/sh
# Builds the Go yamux interop peer with Debian's Go and hashicorp/yamux, in GOPATH mode (there is no
# module proxy here), through ../go-build.sh. Usage: build.sh [OUTPUT [SOURCE_DIR]]
# (default: <repo>/.cache/interop/yamux-peer from ./yamux-peer; bench/go/build.sh passes its own program).
# Rebuilds only when a source file is newer than OUTPUT. Prints OUTPUT's path on success.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
out=${1:-"$repo/.cache/interop/yamux-peer"}
src=${2:-"$here/yamux-peer"}
gocode=/usr/share/gocode
yamux_dir="$gocode/src/github.com/hashicorp/yamux"

die() { echo "build.sh: $*" >&2; exit 1; }

command -v go >/dev/null 2>&1 ||
	die "go not found; install it with: apt-get install -y golang-go golang-github-hashicorp-yamux-dev"
[ -f "$yamux_dir/session.go" ] ||
	die "hashicorp/yamux not found in $yamux_dir; install it with: apt-get install -y golang-github-hashicorp-yamux-dev"

exec "$here/../go-build.sh" "$src" "$out" "$yamux_dir"
