#!/usr/bin/env bash
# Install what the test suite needs beyond the Python packages, when it is missing:
# - Debian packages: SoftHSM2 (the PKCS#11 token the HSM backend tests run against),
#   chromium (the browser the dashboard's tests drive through Playwright, tests/web), and Go
#   with golang.org/x/mod (Go's transparent-log code, the judge of tests/log/test_log_go_tlog.py);
# - a separate venv holding Microsoft's CTS client pyscitt (it pins cryptography 44 and
#   cbor2 5.4, so it never goes into .venv): tests/transparency/pyscitt_venv.py.
# Called by `make test`; safe to run again (it installs nothing that is present).
set -euo pipefail
cd "$(dirname "$0")/.."

softhsm_present() {
    command -v softhsm2-util >/dev/null 2>&1 && {
        [ -e /usr/lib/softhsm/libsofthsm2.so ] ||
            [ -e /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so ] ||
            [ -e /usr/local/lib/softhsm/libsofthsm2.so ]
    }
}

chromium_present() {
    [ -x /usr/bin/chromium ] || command -v chromium >/dev/null 2>&1
}

go_present() {
    command -v go >/dev/null 2>&1
}

go_x_mod_present() {
    [ -d /usr/share/gocode/src/golang.org/x/mod/sumdb/tlog ]
}

install_debian_packages() {
    local missing=()
    softhsm_present || missing+=(softhsm2)
    chromium_present || missing+=(chromium)
    go_present || missing+=(golang-go)
    go_x_mod_present || missing+=(golang-golang-x-mod-dev)
    if [ "${#missing[@]}" -eq 0 ]; then
        return 0
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "install-test-deps: ${missing[*]} missing and apt-get is not available;" \
            "install them by hand (the PKCS#11, browser and Go tests will be skipped)" >&2
        return 0
    fi
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then
            sudo="sudo"
        else
            echo "install-test-deps: ${missing[*]} missing and this user cannot install them" >&2
            return 0
        fi
    fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
    echo "install-test-deps: installed ${missing[*]}"
    return 0
}

make_pyscitt_venv() {
    local python=python3
    if [ -x .venv/bin/python ]; then
        python=.venv/bin/python
    fi
    "$python" tests/transparency/pyscitt_venv.py >/dev/null ||
        echo "install-test-deps: no pyscitt venv (the pyscitt tests will be skipped)" >&2
    return 0
}

install_debian_packages
make_pyscitt_venv
