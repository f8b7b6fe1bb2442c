"""Shared fixtures. Tests never load entry points implicitly: plugins are registered explicitly."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Set before any plugin manager exists: the process-wide manager then loads no external plugin.
os.environ["AGENTWORLD_LOAD_PLUGINS"] = ""
# Compile-cache keys of test runs stay out of the user's configuration directory.
os.environ["AGENTWORLD_CACHE_KEY_FILE"] = str(
    Path(tempfile.mkdtemp(prefix="agentworld-test-key-")) / "compile-cache.key")
os.environ.pop("AGENTWORLD_DISABLE_PLUGINS", None)
os.environ.pop("AGENTWORLD_TRACE_PLUGINS", None)

import pytest

from agentworld.manager import PluginManager


@pytest.fixture
def plugin_manager() -> PluginManager:
    """A fresh manager with the built-in plugins and no entry points."""
    return PluginManager(entrypoints=False, environ={})
