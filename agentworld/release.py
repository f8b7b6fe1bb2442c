"""The release of agentworld this is (a module of its own: the plugin manager needs it and
the package's `__init__` imports the world, which imports the plugin manager)."""

from __future__ import annotations

__version__ = "0.1.0"
