"""The README's map of the package ("How it is built") names every package and module, so a
newcomer reading it as a table of contents finds every file; a module added without a line
in the map fails here."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "hookinspect"


def the_map() -> dict[str, str]:
    """Each entry of the map (a top-level name like `store/` or `model.py`) and its text."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## How it is built"):]
    block = section[section.index("```\nhookinspect/\n") + len("```\nhookinspect/\n"):]
    block = block[:block.index("```")]
    entries: dict[str, str] = {}
    current = None
    for line in block.splitlines():
        match = re.match(r"^  (\S+)", line)
        if match and not line.startswith("  ---"):
            current = match.group(1)
            entries[current] = line
        elif current is not None:
            entries[current] += "\n" + line
    return entries


def test_every_module_is_on_the_map():
    entries = the_map()
    text = "\n".join(entries.values())
    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if path.name == "__init__.py":
            continue
        if len(relative.parts) == 1:
            if path.name not in text and path.name != "__main__.py":
                missing.append(str(relative))
            continue
        top = relative.parts[0] + "/"
        entry = entries.get(top, "")
        if not re.search(rf"\b{re.escape(path.stem)}\b", entry):
            missing.append(str(relative))
    assert missing == [], f"not on the README's map: {missing}"


def test_every_package_has_an_entry():
    entries = the_map()
    packages = sorted(p.name + "/" for p in PACKAGE.iterdir() if (p / "__init__.py").exists())
    assert [p for p in packages if p not in entries] == []
