#!/bin/sh
# Set up everything vmigrate needs on a Debian machine (idempotent, quick when done):
#   * Debian packages: rsync and OpenSSH (data plane peers, benchmarks), iproute2 (test
#     hosts in network namespaces), chromium (browser test), Go + govmomi sources (the
#     vSphere API simulator peer), GNU time (benchmarks), python3-venv, qemu-utils (qemu-img
#     reads the lab's VMware delta files as an independent reader), busybox (the ESXi-like
#     shell of the esxi test peer), zstd (the zstd pipe benchmarks compare against);
#   * a virtual environment in .venv with vmigrate and its dev tools (pip install -e .[dev]);
#   * the Jupyter kernel "vmigrate" and the JupyterLab settings the project ships.
# Usage: scripts/setup.sh        (as root, or with sudo available)
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

packages="rsync openssh-server openssh-client iproute2 chromium golang-go golang-github-vmware-govmomi-dev time python3-venv qemu-utils busybox zstd"
missing=""
for p in $packages; do
    dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "setup: installing Debian packages:$missing"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >/dev/null
fi

py=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv"
    "$py" -m venv .venv
fi
stamp=.venv/.vmigrate-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "setup: installing vmigrate and its dependencies into .venv"
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e ".[dev]"
    touch "$stamp"
fi
sh jupyter/install.sh .venv/bin/python
echo "setup: done (.venv/bin/vmigrate --help)"
