"""Built-in store and compatibility-rule plugins, shipped as `agentworld.plugins`."""
