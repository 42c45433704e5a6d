#!/usr/bin/env bash
# Installs the official Pegasus Python client (PyPI pypegasus3, unmodified) into a venv for
# tests/it/official.rs. Idempotent. Prints the venv's python path on its last line.
#
#   OFFICIAL_CLIENT_VENV  venv directory (default .venv-official in the crate root)
#
# Pins: the versions pypegasus3 0.0.1.1 resolved to and that were verified against the simulator
# (it pins Twisted, thrift, aenum, cryptography, pyOpenSSL itself; the rest are their deps).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${OFFICIAL_CLIENT_VENV:-.venv-official}"

PINS=(
  pypegasus3==0.0.1.1
  Twisted==21.2.0 thrift==0.13.0 aenum==3.0.0 cryptography==3.2 pyOpenSSL==20.0.1
  Automat==25.4.16 attrs==26.1.0 cffi==2.1.1 constantly==23.10.4 hyperlink==21.0.0
  idna==3.20 incremental==24.11.0 packaging==26.4 pycparser==3.12 six==1.17.0
  zope.interface==8.7
)

if [ ! -x "$venv/bin/python" ]; then
  if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    # Debian/Ubuntu ship venv (ensurepip) separately.
    rm -rf "$venv"
    echo "python3 -m venv failed; installing python3-venv" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >&2
    python3 -m venv "$venv"
  fi
fi

py="$(cd "$venv" && pwd)/bin/python"
# Importing the client writes ./pegasus.log (its logger config): import it in a scratch dir.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
imports() { (cd "$scratch" && "$py" -W ignore -c 'import pypegasus.pgclient'); }
if ! imports >/dev/null 2>&1 \
   || [ "$("$py" -m pip show pypegasus3 2>/dev/null | sed -n 's/^Version: //p')" != "0.0.1.1" ]; then
  # thrift 0.13.0 is a source distribution with a C extension; it falls back to pure python if
  # no compiler is present, which the client handles too.
  "$py" -m pip install --disable-pip-version-check -q "${PINS[@]}" >&2
fi
imports
echo "$py"
