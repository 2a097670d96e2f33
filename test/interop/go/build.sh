#!/bin/sh
# Builds the Go yamux interop peer with Debian's Go and hashicorp/yamux, in GOPATH mode (there is no
# module proxy here). Usage: build.sh [OUTPUT]  (default: <repo>/.cache/interop/yamux-peer)
# Rebuilds only when a source file is newer than OUTPUT. Prints OUTPUT's path on success.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
out=${1:-"$repo/.cache/interop/yamux-peer"}
src="$here/yamux-peer"
gocode=/usr/share/gocode
yamux_dir="$gocode/src/github.com/hashicorp/yamux"

die() { echo "build.sh: $*" >&2; exit 1; }

command -v go >/dev/null 2>&1 ||
	die "go not found; install it with: apt-get install -y golang-go golang-github-hashicorp-yamux-dev"
[ -f "$yamux_dir/session.go" ] ||
	die "hashicorp/yamux not found in $yamux_dir; install it with: apt-get install -y golang-github-hashicorp-yamux-dev"

case $out in /*) ;; *) out="$(pwd)/$out" ;; esac

# Up to date when the binary exists and nothing it is built from is newer.
if [ -x "$out" ] && [ -z "$(find "$src" "$yamux_dir" -newer "$out" -type f -name '*.go' -print -quit 2>/dev/null)" ]; then
	echo "$out"
	exit 0
fi

mkdir -p "$(dirname "$out")"
gopath=$(mktemp -d)
trap 'rm -rf "$gopath"' EXIT INT TERM
# Build into a temporary name and rename, so a failed or concurrent build never leaves half a binary.
tmp="$out.tmp.$$"
(
	cd "$src"
	GO111MODULE=off GOPATH="$gopath:$gocode" GOPROXY=off GOFLAGS= \
		GOCACHE=${GOCACHE:-"$repo/.cache/interop/go-build"} \
		go build -o "$tmp" .
) || { rm -f "$tmp"; die "go build failed"; }
mv -f "$tmp" "$out"
echo "$out"
