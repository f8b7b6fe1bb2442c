"""The demo scenario behind `agentworld demo`: a small world, stepped, with its state root."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agentworld.world import World


def run_demo(echo: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the demo world and return a summary (`state_root`, `events`, `time`)."""
    say = echo or (lambda _text: None)
    world = World()
    world.submit({"type": "register_agent", "data": {"agent_id": "ada", "position": [0, 0],
                                                     "resources": {"ore": 10}}})
    world.submit({"type": "register_agent", "data": {"agent_id": "bob", "position": [3, 4]}})
    world.step()
    world.submit({"type": "move_agent", "data": {"agent_id": "ada", "to": [1, 2]}})
    world.submit({"type": "transfer_resource", "data": {"from_agent_id": "ada",
                  "to_agent_id": "bob", "kind": "ore", "amount": 4}})
    world.submit({"type": "transfer_resource", "data": {"from_agent_id": "bob",
                  "to_agent_id": "ada", "kind": "ore", "amount": 99}})
    world.step_with_modules()
    for event in world.journal:
        say(f"t={event.time} #{event.id} {event.kind} {event.data}")
    root = world.state_root()
    say(f"state root: {root}")
    return {"state_root": root, "events": len(world.journal), "time": world.time}
