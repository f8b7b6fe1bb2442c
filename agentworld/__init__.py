"""agentworld: a deterministic, event-sourced agent world running sandboxed WebAssembly modules."""

from __future__ import annotations

__version__ = "0.1.0"

from agentworld.errors import AgentWorldError  # noqa: E402
from agentworld.hookspecs import hookimpl  # noqa: E402
from agentworld.model import Event  # noqa: E402
from agentworld.world import World, WorldConfig  # noqa: E402

__all__ = ["AgentWorldError", "Event", "World", "WorldConfig", "__version__", "hookimpl"]
