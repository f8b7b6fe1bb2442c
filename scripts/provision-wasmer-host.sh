#!/usr/bin/env bash
# Provision a Python that imports wasmer, for the wasmer executor's host process.
#
# The wasmer package (1.1.0, its last release) has real wheels only for CPython <= 3.10, so this
# builds a private CPython 3.9 from Debian bullseye's packages plus the cp39 manylinux wheels of
# wasmer and its Cranelift compiler, all under the repository's ignored .cache/ folder. Nothing
# outside that folder changes: apt runs with a private sources list, package lists and cache,
# and the packages are unpacked with `dpkg -x`, not installed. The mirror is the one this
# machine's apt already uses.
#
# Idempotent: a second run only checks the interpreter. Progress goes to stderr; the last line
# on stdout is the interpreter's path (use it as AGENTWORLD_WASMER_PYTHON).
#
# Environment: PYTHON (a Python with pip, for `pip download`; default: the repository's .venv,
# else python3), AGENTWORLD_CACHE (default: <repository>/.cache).
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd -P)"
cache="${AGENTWORLD_CACHE:-$repo/.cache}"
home="$cache/wasmer-host"
python="$home/bin/python"
packages=(python3.9-minimal libpython3.9-minimal libpython3.9-stdlib libffi7 libssl1.1 libmpdec3)
wheels=(wasmer==1.1.0 wasmer-compiler-cranelift==1.1.0)

say() { echo "provision-wasmer-host: $*" >&2; }

works() {
    [ -x "$1" ] && "$1" -c 'import wasmer, wasmer_compiler_cranelift' >/dev/null 2>&1
}

if works "$python"; then
    echo "$python"
    exit 0
fi

for tool in apt-get dpkg; do
    if ! command -v "$tool" >/dev/null; then
        say "needs $tool (a Debian-based machine); set AGENTWORLD_WASMER_PYTHON to a Python" \
            "<= 3.10 with 'pip install wasmer==1.1.0 wasmer-compiler-cranelift==1.1.0' instead"
        exit 1
    fi
done

pip_python="${PYTHON:-}"
if [ -z "$pip_python" ]; then
    if [ -x "$repo/.venv/bin/python" ]; then pip_python="$repo/.venv/bin/python"; else pip_python=python3; fi
fi

# Build in a scratch folder and move it into place at the end, so an interrupted run leaves no
# half-built interpreter behind.
mkdir -p "$cache"
work="$(mktemp -d "$cache/wasmer-host.building.XXXXXX")"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/apt/lists/partial" "$work/apt/cache/archives/partial" "$work/apt/parts" \
    "$work/debs" "$work/wheels" "$work/root" "$work/site" "$work/bin"

# The archive this machine's apt uses for its own release (never a host name written here).
codename="$(. /etc/os-release && echo "${VERSION_CODENAME:-}")"
uri="$(apt-get indextargets --no-release-info --format '$(REPO_URI) $(RELEASE) $(TARGET_OF)' \
    | awk -v c="$codename" '$3 == "deb" && ($2 == c || (c == "" && $2 !~ /-/)) {print $1; exit}')"
if [ -z "$uri" ]; then
    say "found no Debian archive in this machine's apt sources"
    exit 1
fi
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
signed=""
if [ -r "$keyring" ]; then signed="[signed-by=$keyring] "; fi
echo "deb ${signed}${uri} bullseye main" >"$work/apt/sources.list"
apt_options=(
    -q
    -o "Dir::Etc::SourceList=$work/apt/sources.list"
    -o "Dir::Etc::SourceParts=$work/apt/parts"
    -o "Dir::State::Lists=$work/apt/lists"
    -o "Dir::Cache=$work/apt/cache"
    -o "APT::Sandbox::User=root"
)
say "fetching Debian bullseye's python3.9 packages"
apt-get -qq "${apt_options[@]}" update >&2
(cd "$work/debs" && apt-get -qq "${apt_options[@]}" download "${packages[@]}" >&2)
for deb in "$work"/debs/*.deb; do
    dpkg -x "$deb" "$work/root"
done

say "fetching the cp39 wheels of ${wheels[*]}"
if ! "$pip_python" -m pip --version >/dev/null 2>&1; then
    # A Python without pip (Debian's own python3): a throwaway venv has one.
    "$pip_python" -m venv "$work/pip" >&2
    pip_python="$work/pip/bin/python"
fi
"$pip_python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.9 \
    --platform manylinux_2_24_x86_64 -d "$work/wheels" "${wheels[@]}" >&2
for wheel in "$work"/wheels/*.whl; do
    "$pip_python" -m zipfile -e "$wheel" "$work/site"
done

# The interpreter needs its home and its libraries (libssl1.1, libffi7, libmpdec3) found; the
# wrapper locates them relative to itself, so the folder may be moved.
cat >"$work/bin/python" <<'EOF'
#!/bin/sh
here="$(cd "$(dirname "$0")/.." && pwd -P)"
PYTHONHOME="$here/root/usr" \
LD_LIBRARY_PATH="$here/root/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
PYTHONPATH="$here/site" \
exec "$here/root/usr/bin/python3.9" "$@"
EOF
chmod +x "$work/bin/python"
rm -rf "$work/apt" "$work/debs" "$work/wheels" "$work/pip"

if ! works "$work/bin/python"; then
    say "the provisioned Python 3.9 cannot import wasmer:"
    "$work/bin/python" -c 'import wasmer, wasmer_compiler_cranelift' >&2 || true
    exit 1
fi
rm -rf "$home"
mv "$work" "$home"
trap - EXIT
say "ready ($(du -sh "$home" | cut -f1))"
echo "$python"
