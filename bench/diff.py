"""Structural diff speed on a ~20 MiB JSON document: ours, and deepdiff when it is installed.

    python bench/diff.py
"""

from __future__ import annotations

import copy
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hookinspect.formats.diff import diff_json  # noqa: E402


def main() -> None:
    old = {"items": [{"id": i, "v": "x" * 100} for i in range(170_000)]}
    new = copy.deepcopy(old)
    new["items"][100_000]["v"] = "changed"
    start = time.perf_counter()
    changes = diff_json(old, new)
    ours = time.perf_counter() - start
    print(f"hookinspect.formats.diff: {ours:.2f} s, {len(changes)} change(s): {[c.path for c in changes]}")
    try:
        from deepdiff import DeepDiff
    except ImportError:
        print("deepdiff: not installed (pip install deepdiff to compare)")
        return
    start = time.perf_counter()
    DeepDiff(old, new)
    theirs = time.perf_counter() - start
    print(f"deepdiff: {theirs:.2f} s ({theirs / ours:.1f}x ours)")


if __name__ == "__main__":
    main()
