"""The benchmark script runs and reports every figure (timings are not asserted in tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks" / "run.py"

EXECUTOR_KEYS = {
    "warm_call_us",
    "naive_call_us",
    "careful_call_us",
    "extism_call_us",
    "fresh_call_us",
    "naive_fresh_call_us",
    "careful_fresh_call_us",
    "extism_fresh_call_us",
    "full_call_us",
    "speedup_vs_extism",
    "speedup_vs_naive",
    "speedup_vs_careful",
    "fresh_speedup_vs_extism_fresh",
    "fresh_speedup_vs_naive_fresh",
    "fresh_speedup_vs_careful_fresh",
}


def run_benchmark(name: str, timeout: float = 300) -> dict[str, Any]:
    """The figures `benchmarks/run.py NAME --json --quick` prints, as its one line of JSON."""
    completed = subprocess.run(
        [sys.executable, str(BENCHMARKS), name, "--json", "--quick"],
        check=True, capture_output=True, text=True, timeout=timeout,
    )
    (line,) = completed.stdout.splitlines()
    results: dict[str, Any] = json.loads(line)
    return results


def test_executor_benchmark_prints_one_json_line() -> None:
    results = run_benchmark("executor", 120)
    assert set(results) == EXECUTOR_KEYS
    for key in (
        "warm_call_us",
        "naive_call_us",
        "fresh_call_us",
        "naive_fresh_call_us",
        "full_call_us",
        "speedup_vs_naive",
        "fresh_speedup_vs_naive_fresh",
        "careful_call_us",
        "careful_fresh_call_us",
        "speedup_vs_careful",
        "fresh_speedup_vs_careful_fresh",
    ):
        assert isinstance(results[key], float) and results[key] > 0
    # Extism is optional (the `bench` extra): without it its figures are null.
    for key in (
        "extism_call_us",
        "extism_fresh_call_us",
        "speedup_vs_extism",
        "fresh_speedup_vs_extism_fresh",
    ):
        assert results[key] is None or results[key] > 0


def test_ticks_benchmark_reports_every_size_and_the_ratio() -> None:
    results = run_benchmark("ticks")
    assert list(results["us_per_call"]) == ["1", "10", "100", "1000"]
    assert all(value > 0 for value in results["us_per_call"].values())
    assert results["ratio_largest_to_smallest"] > 0


def test_persistence_benchmark_reports_throughput_and_start_ratio() -> None:
    results = run_benchmark("persistence")
    assert set(results) >= {"save_events_per_s", "load_events_per_s", "replay_events_per_s",
                            "cold_start_s", "warm_start_s", "warm_vs_cold_speedup"}
    assert all(value > 0 for value in results.values())


def test_filters_benchmark_reports_each_case() -> None:
    results = run_benchmark("filters", 120)
    assert set(results) == {"max_subject_chars", "typical_us", "prefix_scan_us",
                            "adversarial_us", "hostile_classes_us", "manifest_worst_ms"}
    assert all(value > 0 for value in results.values())


def test_live_benchmark_reports_both_worlds_and_the_ratio() -> None:
    results = run_benchmark("live")
    for key in ("ms_per_height", "heights_per_s_with_fsync", "checkpoint_ms",
                "ms_per_height_with_checkpoints"):
        assert set(results[key]) == {"small", "large"}
        assert all(value > 0 for value in results[key].values())
    assert results["agents"]["large"] > results["agents"]["small"]
    assert results["journal_events"]["large"] > results["journal_events"]["small"]
    assert results["large_over_small"] > 0


def test_guests_benchmark_compares_the_sdk_counters_with_the_wat_counter() -> None:
    results = run_benchmark("guests")
    assert set(results) == {"instances", "world_call_us", "full_call_us", "c_vs_wat",
                            "rust_vs_wat", "wasm_bytes"}
    for key in ("world_call_us", "full_call_us", "wasm_bytes"):
        assert set(results[key]) == {"wat", "c", "rust"}
        assert all(value > 0 for value in results[key].values())
    assert results["c_vs_wat"] > 0 and results["rust_vs_wat"] > 0


def test_metering_benchmark_reports_the_ratio_and_deploy_costs() -> None:
    results = run_benchmark("metering")
    assert set(results) == {"native_call_ms", "instrumented_call_ms",
                            "instrumented_backstop_call_ms", "instrumented_over_native",
                            "backstop_over_native", "artifact_mb", "instrument_ms_per_mb",
                            "compile_ms_per_mb", "instrumented_size_ratio"}
    assert all(value > 0 for value in results.values())


def test_engines_benchmark_reports_both_engines() -> None:
    results = run_benchmark("engines")
    assert set(results) == {"batch", "wasmtime_call_us", "host_unbatched_call_us",
                            "host_batched_call_us", "host_batched_over_unbatched",
                            "host_batched_over_wasmtime", "wasmer_unavailable"}
    assert results["batch"] == 100 and results["wasmtime_call_us"] > 0
    if results["wasmer_unavailable"] is None:
        assert results["host_batched_call_us"] > 0 and results["host_unbatched_call_us"] > 0
        assert results["host_batched_over_unbatched"] > 0
    else:
        assert results["host_batched_call_us"] is None


def test_kernel_benchmark_reports_every_ratio_and_the_replay_rate() -> None:
    results = run_benchmark("kernel")
    assert set(results) == {"routed_call_us", "engine_call_us", "routed_over_engine",
                            "unmatched_us", "unmatched_10000_over_1", "install_s",
                            "install_2000_over_1000", "root_ms", "root_50000_over_500",
                            "save_ms", "save_100k_over_1k", "replay_events_per_s"}
    for key in ("unmatched_us", "install_s", "root_ms", "save_ms"):
        assert len(results[key]) == 2 and all(value > 0 for value in results[key].values())
    assert all(value > 0 for key, value in results.items() if not isinstance(value, dict))
