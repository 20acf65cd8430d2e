"""The terminal UI: a Textual app over the same core functions the CLI uses."""
