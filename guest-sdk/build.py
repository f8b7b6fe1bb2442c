"""Build the guest SDKs' example modules (and the test probes) from source.

    python guest-sdk/build.py OUTDIR

prints one line per module: its name (`c/counter`, `rust/counter`, ...), size in bytes and
path. Needs clang and lld (C) and Debian's rustc with the wasm32 standard library (Rust):
`scripts/install-guest-toolchains.sh` installs them. Used by the tests and the benchmarks.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

SDK = Path(__file__).resolve().parent
INSTALL_HINT = "run scripts/install-guest-toolchains.sh to install the guest toolchains"

EXAMPLES = ("counter", "rule", "observer", "tally", "counter_v1", "counter_v2")
"""Example modules, the same in both languages."""

CLANG_FLAGS = ("--target=wasm32", "-O2", "-nostdlib", "-Wl,--no-entry", "-Wl,--stack-first",
               "-Wall", "-Wextra", "-Werror")
RUSTC_FLAGS = ("--edition", "2021", "--target", "wasm32-unknown-unknown", "-C", "opt-level=s",
               "-C", "lto", "-C", "strip=symbols", "-C", "panic=abort",
               "-C", "link-arg=-zstack-size=65536")


class ToolchainMissing(RuntimeError):
    """A compiler the SDK needs is not installed."""


def rustc() -> str:
    """Debian's rustc (a rustup toolchain earlier on PATH has no wasm32 standard library)."""
    return os.environ.get("AGENTWORLD_RUSTC", "/usr/bin/rustc")


def check_toolchains() -> None:
    """Raise `ToolchainMissing` naming what is missing and how to install it."""
    missing = [tool for tool in ("clang", "wasm-ld") if shutil.which(tool) is None]
    if not Path(rustc()).exists():
        missing.append(rustc())
    else:
        libdir = subprocess.run(
            [rustc(), "--print", "target-libdir", "--target", "wasm32-unknown-unknown"],
            capture_output=True, text=True, check=False).stdout.strip()
        if not libdir or not any(Path(libdir).glob("libcore-*.rlib")):
            missing.append("the wasm32 Rust standard library")
    if missing:
        raise ToolchainMissing(f"missing {', '.join(missing)}: {INSTALL_HINT}")


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr}")


def build_c(source: Path, out: Path) -> Path:
    """Compile one C module with the SDK's header."""
    _run(["clang", *CLANG_FLAGS, "-I", str(SDK / "c"), "-o", str(out), str(source)])
    return out


def build_rust_crate(out_dir: Path) -> Path:
    """Compile the `agentworld-guest` crate to an rlib in `out_dir`."""
    rlib = out_dir / "libagentworld_guest.rlib"
    _run([rustc(), *RUSTC_FLAGS, "--crate-type", "rlib", "--crate-name", "agentworld_guest",
          "-o", str(rlib), str(SDK / "rust" / "agentworld-guest" / "src" / "lib.rs")])
    return rlib


def build_rust(source: Path, out: Path, rlib: Path) -> Path:
    """Compile one Rust module against the crate's rlib."""
    _run([rustc(), *RUSTC_FLAGS, "--crate-type", "cdylib",
          "--extern", f"agentworld_guest={rlib}", "-o", str(out), str(source)])
    return out


def sources() -> dict[str, tuple[str, Path]]:
    """Every buildable module: name -> (language, source file)."""
    found: dict[str, tuple[str, Path]] = {}
    for name in EXAMPLES:
        found[f"c/{name}"] = ("c", SDK / "c" / "examples" / f"{name}.c")
        found[f"rust/{name}"] = ("rust", SDK / "rust" / "agentworld-guest" / "examples"
                                 / f"{name}.rs")
    found["c/probe"] = ("c", SDK / "c" / "test" / "probe.c")
    found["rust/probe"] = ("rust", SDK / "rust" / "test" / "probe.rs")
    return found


def build_all(out_dir: Path, names: list[str] | None = None) -> dict[str, Path]:
    """Build the named modules (all by default) into `out_dir`: name -> wasm path."""
    check_toolchains()
    wanted = sources() if names is None else {name: sources()[name] for name in names}
    out_dir.mkdir(parents=True, exist_ok=True)
    rlib = (build_rust_crate(out_dir)
            if any(lang == "rust" for lang, _ in wanted.values()) else None)

    def build(name: str) -> Path:
        language, source = wanted[name]
        out = out_dir / f"{name.replace('/', '-')}.wasm"
        if language == "c":
            return build_c(source, out)
        assert rlib is not None
        return build_rust(source, out, rlib)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(wanted, pool.map(build, wanted), strict=True))


def main(argv: list[str]) -> int:
    """Build every module into the directory given as the one argument."""
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        built = build_all(Path(argv[0]))
    except (ToolchainMissing, RuntimeError) as exc:
        print(exc, file=sys.stderr)
        return 1
    for name, path in built.items():
        print(f"{name:<20} {path.stat().st_size:>7}  {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
