"""The core must not import a shell library: the CLI and TUI are shells over it."""

import subprocess
import sys

import pytest

CORE_MODULES = [
    "hookinspect.model", "hookinspect.body", "hookinspect.filters", "hookinspect.config",
    "hookinspect.errors", "hookinspect.store.sqlite", "hookinspect.store.writer", "hookinspect.receiver",
    "hookinspect.forward", "hookinspect.httpclient", "hookinspect.retry_queue", "hookinspect.routing",
    "hookinspect.replay", "hookinspect.export", "hookinspect.samples", "hookinspect.signing.registry",
]


@pytest.mark.parametrize("module", CORE_MODULES)
def test_core_module_does_not_import_typer_rich_or_textual(module):
    code = (f"import sys, {module}; bad = [m for m in ('typer', 'rich', 'textual') if m in sys.modules]; "
            "print(','.join(bad)); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, f"{module} imports {result.stdout.strip()}"
