"""`python -m agentworld` runs the command line."""

from agentworld.cli import main

main()
