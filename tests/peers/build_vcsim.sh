#!/bin/sh
# Build the vSphere API simulator peer (tests/peers/vcsim) offline, in GOPATH
# mode, against Debian's golang-github-vmware-govmomi-dev. Idempotent; about
# one second when the Go build cache (.gocache/, git-ignored) is warm.
#
# Usage: tests/peers/build_vcsim.sh [OUTPUT]   (default tests/peers/bin/vcsim)
# Exit 3 when Go or govmomi is missing (callers turn that into a skip).
set -eu

repo=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$repo/tests/peers/bin/vcsim}
gopath=${VCSIM_GOPATH:-/usr/share/gocode}

if ! command -v go >/dev/null 2>&1; then
    echo "build_vcsim: 'go' not found (apt-get install golang-go)" >&2
    exit 3
fi
if [ ! -d "$gopath/src/github.com/vmware/govmomi/simulator" ]; then
    echo "build_vcsim: govmomi simulator not found under $gopath (apt-get install golang-github-vmware-govmomi-dev)" >&2
    exit 3
fi

mkdir -p "$(dirname "$out")" "$repo/.gocache"
cd "$repo"
GO111MODULE=off GOPATH="$gopath" GOPROXY=off GOFLAGS= GOTOOLCHAIN=local \
GOCACHE="$repo/.gocache" CGO_ENABLED=0 \
    go build -o "$out" ./tests/peers/vcsim
echo "$out"
