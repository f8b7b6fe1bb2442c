"""The kernel pauses the cyclic garbage collector only for the operation, never beyond it."""

from __future__ import annotations

import gc

import pytest

from agentworld import World
from agentworld.gcpause import paused_gc


def test_the_collector_is_restored_after_the_block_even_when_it_raises() -> None:
    assert gc.isenabled()
    with pytest.raises(RuntimeError), paused_gc():
        assert not gc.isenabled()
        with paused_gc():  # nested: the outer block restores
            assert not gc.isenabled()
        assert not gc.isenabled()
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_a_disabled_collector_stays_disabled() -> None:
    gc.disable()
    try:
        with paused_gc():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_steps_leave_the_collector_as_they_found_it() -> None:
    world = World()
    world.submit({"type": "register_agent", "data": {"agent_id": "ada", "position": [0, 0]}})
    world.step()
    world.step_with_modules()
    assert gc.isenabled()
