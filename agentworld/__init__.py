"""agentworld: a deterministic, event-sourced agent world running sandboxed WebAssembly modules."""

from __future__ import annotations

from agentworld.errors import AgentWorldError
from agentworld.hookspecs import hookimpl
from agentworld.model import Event
from agentworld.release import __version__
from agentworld.world import World, WorldConfig

__all__ = ["AgentWorldError", "Event", "World", "WorldConfig", "__version__", "hookimpl"]
