#!/usr/bin/env bash
# Install the system packages the test suite needs when they are missing.
# Today: SoftHSM2 (the PKCS#11 token the HSM backend tests run against) and chromium (the
# browser the dashboard's tests drive through Playwright, tests/web).
# Called by `make test`; safe to run again (it installs nothing that is present).
set -euo pipefail

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

missing=()
softhsm_present || missing+=(softhsm2)
chromium_present || missing+=(chromium)

if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-test-deps: ${missing[*]} missing and apt-get is not available;" \
        "install them by hand (the PKCS#11 and browser tests will be skipped)" >&2
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "install-test-deps: ${missing[*]} missing and this user cannot install them" >&2
        exit 0
    fi
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
softhsm_present && [[ " ${missing[*]} " == *" softhsm2 "* ]] && echo "install-test-deps: installed softhsm2"
chromium_present && [[ " ${missing[*]} " == *" chromium "* ]] && echo "install-test-deps: installed chromium"
exit 0
