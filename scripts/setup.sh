#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian machine: system packages, a virtual environment,
# and an editable install of the project (which compiles the native extension).
# Re-running it is cheap: each step is skipped when already done.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${TL_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"

# Debian packages the project needs: the HSMs we test against (SoftHSM 2, swtpm with
# tpm2-pkcs11), OpenSC's pkcs11-tool for operators, the C toolchain for native/, and
# Chromium, in which tests/explorer/ loads the node's web page headless.
APT_PACKAGES=(
    build-essential cmake pkg-config
    softhsm2 opensc
    swtpm swtpm-tools tpm2-tools tpm2-abrmd libtss2-tcti-tabrmd0 dbus-daemon libtpm2-pkcs11-1 libtpm2-pkcs11-tools
    chromium
)

log() { printf '[setup] %s\n' "$*" >&2; }

missing_packages() {
    local pkg
    for pkg in "${APT_PACKAGES[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
            printf '%s\n' "$pkg"
        fi
    done
}

install_system_packages() {
    local missing
    mapfile -t missing < <(missing_packages)
    if [ "${#missing[@]}" -eq 0 ]; then
        return
    fi
    log "installing Debian packages: ${missing[*]}"
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then
            sudo=(sudo)
        else
            log "error: missing Debian packages (${missing[*]}) and not root; install them with:"
            log "  apt-get update && apt-get install -y ${missing[*]}"
            exit 1
        fi
    fi
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

install_python_env() {
    if [ ! -x "$VENV/bin/python" ]; then
        log "creating virtual environment in $VENV"
        "$PYTHON" -m venv "$VENV"
    fi
    # Reinstall when anything that shapes the install changed (dependencies, native sources,
    # the version the extension is stamped with), or when the extension is missing.
    local stamp="$VENV/.tl-install-stamp" digest
    digest="$(cat "$ROOT/pyproject.toml" "$ROOT/setup.py" "$ROOT/src/trusted_ledger/_version.py" \
        "$ROOT"/native/*.c "$ROOT"/native/*.h "$ROOT/native/build_ffi.py" | sha256sum | cut -d' ' -f1)"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$digest" ] \
        && compgen -G "$ROOT/src/trusted_ledger/hashing/_native*.so" >/dev/null; then
        return
    fi
    log "installing trusted-ledger (editable, with dev tools) into $VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -e "$ROOT[dev]"
    printf '%s\n' "$digest" >"$stamp"
}

# The official Sawtooth Python SDK, for the compatibility tests of external processors
# (docs/processor-kit.md). Installed here with --no-deps, not in pyproject's dev extras (which
# cannot say --no-deps): its declared dependencies are secp256k1 (a compiled binding, wheels
# for few platforms, otherwise built from source), colorlog, toml and PyYAML, used only by
# its signing, logging and config helpers; a processor needs pyzmq and protobuf, both ours.
# Skipped when this version is installed already.
SAWTOOTH_SDK_VERSION=1.2.5
install_sawtooth_sdk() {
    if [ "$("$VENV/bin/python" -m pip show sawtooth-sdk 2>/dev/null | sed -n 's/^Version: //p')" \
        = "$SAWTOOTH_SDK_VERSION" ]; then
        return
    fi
    log "installing sawtooth-sdk $SAWTOOTH_SDK_VERSION (without its dependencies)"
    "$VENV/bin/python" -m pip install -q --no-deps "sawtooth-sdk==$SAWTOOTH_SDK_VERSION"
}

# promtool, with which tests/unit/ops checks ops/prometheus/ (alert rules, scrape config) the
# way Prometheus itself will read them. Taken out of Debian's prometheus package into the
# virtual environment rather than installing the package, which would also enable and start
# a Prometheus server on port 9090 of the developer's machine.
install_promtool() {
    if command -v promtool >/dev/null 2>&1 || [ -x "$VENV/bin/promtool" ]; then
        return
    fi
    log "installing promtool (from Debian's prometheus package) into $VENV/bin"
    local work
    work="$(mktemp -d)"
    if ! (cd "$work" && apt-get download -qq prometheus >/dev/null 2>&1); then
        local sudo=()
        if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then sudo=(sudo); fi
        "${sudo[@]}" apt-get update -qq
        (cd "$work" && apt-get download -qq prometheus >/dev/null)
    fi
    dpkg-deb -x "$work"/prometheus_*.deb "$work/root"
    install -m 0755 "$work/root/usr/bin/promtool" "$VENV/bin/promtool"
    rm -rf "$work"
}

install_system_packages
install_python_env
install_sawtooth_sdk
install_promtool
