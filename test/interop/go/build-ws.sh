#!/bin/sh
# Builds the Go WebSocket yamux peer (ws-yamux-peer/) with Debian's Go, hashicorp/yamux and gorilla/websocket,
# in GOPATH mode (there is no module proxy here). Usage: build-ws.sh [OUTPUT]
# (default: <repo>/.cache/interop/ws-yamux-peer). Rebuilds only when a source file is newer than OUTPUT.
# Prints OUTPUT's path on success; exits 1 with the apt-get line when something is missing.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
out=${1:-"$repo/.cache/interop/ws-yamux-peer"}
src="$here/ws-yamux-peer"
gocode=/usr/share/gocode
hint="apt-get install -y golang-go golang-github-hashicorp-yamux-dev golang-github-gorilla-websocket-dev"

die() { echo "build-ws.sh: $*" >&2; exit 1; }

command -v go >/dev/null 2>&1 || die "go not found; install it with: $hint"
[ -f "$gocode/src/github.com/hashicorp/yamux/session.go" ] || die "hashicorp/yamux not found; install it with: $hint"
[ -f "$gocode/src/github.com/gorilla/websocket/conn.go" ] || die "gorilla/websocket not found; install it with: $hint"

case $out in /*) ;; *) out="$(pwd)/$out" ;; esac

if [ -x "$out" ] && [ -z "$(find "$src" "$gocode/src/github.com/hashicorp/yamux" "$gocode/src/github.com/gorilla/websocket" \
	-newer "$out" -type f -name '*.go' -print -quit 2>/dev/null)" ]; then
	echo "$out"
	exit 0
fi

mkdir -p "$(dirname "$out")"
gopath=$(mktemp -d)
trap 'rm -rf "$gopath"' EXIT INT TERM
tmp="$out.tmp.$$"
(
	cd "$src"
	GO111MODULE=off GOPATH="$gopath:$gocode" GOPROXY=off GOFLAGS= \
		GOCACHE=${GOCACHE:-"$repo/.cache/interop/go-build"} \
		go build -o "$tmp" .
) || { rm -f "$tmp"; die "go build failed"; }
mv -f "$tmp" "$out"
echo "$out"
