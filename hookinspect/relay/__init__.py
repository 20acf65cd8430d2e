"""The tunnel: a self-hostable relay server (smee-compatible) and the client behind `listen --source`."""
