"""The command-line shell: typer commands that parse flags, call the core and render with rich."""
