"""An outside agentworld plugin package: a SQLite module store and an upgrade policy rule.

Installed, it provides two plugins through the `agentworld` entry-point group:
`example-sqlite-store` (the `sqlite:` store scheme) and `example-policy` (the compatibility
rule `major-version-kept`). agentworld loads them by itself; nothing imports this package.
"""

__version__ = "0.1.0"
