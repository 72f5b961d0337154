#!/usr/bin/env bash
# Sets up rmqtui in ./.venv: Python packages, and the mosquitto binary when it is missing.
# Safe to run again; it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")"

PY=${PYTHON:-python3}
if ! command -v "$PY" >/dev/null; then
  echo "setup: python3 (3.11 or newer) is needed: sudo apt-get install -y python3 python3-venv" >&2
  exit 1
fi
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "setup: rmqtui needs Python 3.11 or newer; $("$PY" --version) found" >&2
  exit 1
fi

apt_install() {
  # apt-get only as root; otherwise say exactly what to run
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing $* with apt-get"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  else
    echo "setup: please run: sudo apt-get install -y $*   (then run this script again)" >&2
    exit 1
  fi
}

if [ ! -x .venv/bin/python ]; then
  if ! "$PY" -m venv .venv 2>/dev/null; then
    rm -rf .venv
    apt_install python3-venv
    "$PY" -m venv .venv
  fi
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test,routemq]'
if ! .venv/bin/python -c 'import sys; sys.exit(sys.version_info < (3, 12))'; then
  # RouteMQ declares Python 3.12+ but imports and runs on 3.11 (tests/routemq prove it); its
  # dependencies are already installed by the line above, so this flag only affects RouteMQ itself
  .venv/bin/python -m pip install -q --disable-pip-version-check --ignore-requires-python 'routemq==0.25.0'
fi

if ! command -v mosquitto >/dev/null && [ ! -x /usr/sbin/mosquitto ]; then
  apt_install mosquitto mosquitto-clients
fi
# the packaged service is not needed: rmqtui starts its own private broker
echo "setup: ready ($(.venv/bin/rmqtui --version 2>/dev/null || echo rmqtui)); mosquitto at $(command -v mosquitto || echo /usr/sbin/mosquitto)"
