"""Golden journals: fixed scenarios must give byte-identical journals and state roots.

The recorded files change only in a commit that says why (see `golden_scenarios.py`).
"""

from __future__ import annotations

import pytest

from agentworld.executor import ExecutorConfig
from golden_scenarios import GOLDEN_DIR, SCENARIOS, journal_lines

# wasmtime's own fuel, as a backstop behind the instrumented gas meter.
FUEL_BACKSTOP = ExecutorConfig(options={"fuel_backstop": True})


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_journal_and_root_match_the_recorded_ones(name: str) -> None:
    world = SCENARIOS[name]()
    recorded = (GOLDEN_DIR / f"{name}.jsonl").read_bytes().splitlines(keepends=True)
    actual = journal_lines(world).splitlines(keepends=True)
    for index, (want, got) in enumerate(zip(recorded, actual, strict=False)):
        assert got == want, f"{name}: event {index + 1} differs"
    assert len(actual) == len(recorded), f"{name}: journal length differs"
    assert world.state_root() + "\n" == (GOLDEN_DIR / f"{name}.root").read_text()


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_a_saved_and_reloaded_world_has_the_recorded_root(name: str, tmp_path) -> None:
    world = SCENARIOS[name]()
    world.save_to_dir(tmp_path / "w")
    from agentworld import World

    assert World.load_from_dir(tmp_path / "w").state_root() + "\n" == (
        GOLDEN_DIR / f"{name}.root").read_text()


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_the_engines_own_fuel_as_a_backstop_changes_nothing(name: str) -> None:
    world = SCENARIOS[name](executor_config=FUEL_BACKSTOP)
    assert journal_lines(world) == (GOLDEN_DIR / f"{name}.jsonl").read_bytes()
