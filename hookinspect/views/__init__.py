"""What every shell shows, as styled lines: the CLI and the TUI turn them into rich Text, a
web page into spans. Nothing here imports a shell library; captured text enters a line only
through `text.safe` (the terminal escape), never as markup."""
