"""Built-in executor plugins, shipped as `agentworld.backends`."""
