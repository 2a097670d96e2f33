#!/bin/sh
# Builds the peer on the original github.com/alecthomas/multiplex (test/interop/README.md), from its source
# in ../shared/peers/alecthomas-multiplex (copied into a temporary GOPATH, never into the project), with
# Debian's Go and gopkg.in/tomb.v1. Usage: build.sh [OUTPUT]  (default: <repo>/.cache/interop/multiplex-peer)
# Prints OUTPUT's path on success.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
out=${1:-"$repo/.cache/interop/multiplex-peer"}
original=${MULTIPLEX_ORIGINAL:-"$repo/../shared/peers/alecthomas-multiplex"}
tomb=/usr/share/gocode/src/gopkg.in/tomb.v1

die() { echo "build.sh: $*" >&2; exit 1; }

command -v go >/dev/null 2>&1 ||
	die "go not found; install it with: apt-get install -y golang-go golang-gopkg-tomb.v1-dev"
[ -f "$tomb/tomb.go" ] ||
	die "gopkg.in/tomb.v1 not found in $tomb; install it with: apt-get install -y golang-gopkg-tomb.v1-dev"
[ -f "$original/multiplex.go" ] ||
	die "the original's source not found: $original/multiplex.go (../shared/peers/alecthomas-multiplex)"

exec "$here/../go-build.sh" "$here" "$out" "github.com/alecthomas/multiplex=$original" "$tomb"
