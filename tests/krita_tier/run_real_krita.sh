#!/usr/bin/env bash
# The real-Krita tier for CI: installs Krita 5 and what its Python needs (Debian/Ubuntu apt),
# then runs tests/test_krita_real.py: kritarunner (headless, RGBA U8/U16/F16/F32 against a real
# `lama-backend serve`) and full Krita under Xvfb (action, shortcut, docker, one-step undo).
# With CI=true a missing Krita FAILS these tests instead of skipping them.
# Usage: tests/krita_tier/run_real_krita.sh [extra pytest args]    (from anywhere; uses ./.venv)
set -euo pipefail
cd "$(dirname "$0")/../.."

need_install=0
for program in krita kritarunner xvfb-run; do
    command -v "$program" >/dev/null 2>&1 || need_install=1
done
if [ "$need_install" = 1 ]; then
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends \
        krita python3-pyqt5 python3-sip xvfb xauth python3-numpy python3-zmq python3-msgpack
fi

CI="${CI:-true}" .venv/bin/python -m pytest -q -m krita tests/test_krita_real.py "$@"
