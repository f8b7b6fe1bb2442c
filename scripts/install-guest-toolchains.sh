#!/usr/bin/env bash
# Install the toolchains that build the guest SDKs' modules (Debian packages): clang and lld for
# C, rustc with the wasm32 standard library for Rust. Does nothing when they are already there.
set -euo pipefail

rustc_bin=/usr/bin/rustc
have_toolchains() {
    command -v clang >/dev/null && command -v wasm-ld >/dev/null && [ -x "$rustc_bin" ] || return 1
    local libdir
    libdir="$("$rustc_bin" --print target-libdir --target wasm32-unknown-unknown 2>/dev/null)" || return 1
    compgen -G "$libdir/libcore-*.rlib" >/dev/null
}

if have_toolchains; then
    echo "guest toolchains: already installed"
    exit 0
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "guest toolchains: need root or sudo to apt-get install" >&2; exit 1; }
    sudo=(sudo)
fi
"${sudo[@]}" apt-get update -q
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    clang lld rustc libstd-rust-dev-wasm32
have_toolchains || { echo "guest toolchains: still missing after apt-get install" >&2; exit 1; }
echo "guest toolchains: installed"
