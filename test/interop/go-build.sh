#!/bin/sh
# Builds one Go interop peer in GOPATH mode with Debian's Go (there is no module proxy here), for
# go/build.sh and multiplex-go/build.sh.
# Usage: go-build.sh SRC_DIR OUTPUT [IMPORT_PATH=DIR | DIR]...
#   IMPORT_PATH=DIR  copies DIR's .go files into the temporary GOPATH as IMPORT_PATH (a package that is
#                    not installed, such as the original multiplex from ../shared);
#   DIR              a package already on the GOPATH (/usr/share/gocode), only watched for changes.
# Rebuilds only when a .go file of SRC_DIR or of a DIR is newer than OUTPUT. Prints OUTPUT on success.
set -eu

[ $# -ge 2 ] || { echo "usage: go-build.sh SRC_DIR OUTPUT [IMPORT_PATH=DIR | DIR]..." >&2; exit 2; }
src=$1
out=$2
shift 2
repo=$(cd "$(dirname "$0")/../.." && pwd)
gocode=/usr/share/gocode

case $out in /*) ;; *) out="$(pwd)/$out" ;; esac

watched=$src
for dep in "$@"; do watched="$watched ${dep#*=}"; done

# Up to date when the binary exists and nothing it is built from is newer.
# shellcheck disable=SC2086
if [ -x "$out" ] && [ -z "$(find $watched -newer "$out" -type f -name '*.go' -print -quit 2>/dev/null)" ]; then
	echo "$out"
	exit 0
fi

mkdir -p "$(dirname "$out")"
gopath=$(mktemp -d)
trap 'rm -rf "$gopath"' EXIT INT TERM
for dep in "$@"; do
	case $dep in
	*=*)
		mkdir -p "$gopath/src/${dep%%=*}"
		cp "${dep#*=}"/*.go "$gopath/src/${dep%%=*}/"
		;;
	esac
done
# Build into a temporary name and rename, so a failed or concurrent build never leaves half a binary.
tmp="$out.tmp.$$"
(
	cd "$src"
	GO111MODULE=off GOPATH="$gopath:$gocode" GOPROXY=off GOFLAGS= \
		GOCACHE=${GOCACHE:-"$repo/.cache/interop/go-build"} \
		go build -o "$tmp" .
) || { rm -f "$tmp"; echo "go-build.sh: go build failed" >&2; exit 1; }
mv -f "$tmp" "$out"
echo "$out"
