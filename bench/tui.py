"""TUI start-up: time to the first rendered page and peak memory, on stores of 1k and 100k.

    python bench/tui.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

MEASURE = textwrap.dedent("""
    import asyncio, resource, sys, time
    from hookinspect.tui.app import HookinspectApp
    from hookinspect.tui.widgets.delivery_list import DeliveryList
    from hookinspect.workspace import Workspace

    async def main():
        start = time.perf_counter()
        app = HookinspectApp(Workspace(sys.argv[1]))
        async with app.run_test(size=(160, 50)) as pilot:
            while not app.query_one(DeliveryList).seqs:
                await pilot.pause(0.01)
            await pilot.pause()
            first_page = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{first_page:.3f} {peak:.1f}")

    asyncio.run(main())
""")


def build(path: Path, count: int) -> None:
    sys.path.insert(0, str(ROOT))
    from hookinspect.store.sqlite import Store
    from tests.factories import make_delivery

    with Store(path) as store:
        for start in range(0, count, 10_000):
            with store.transaction():
                store.insert_deliveries([make_delivery(b'{"type":"invoice.paid","pad":"' + b"x" * 1900 + b'"}',
                                                       path=f"/p/{i}") for i in range(start, min(count, start + 10_000))])


def main() -> None:
    results = {}
    for count in (1_000, 100_000):
        path = Path(tempfile.mkdtemp(prefix="hookinspect-bench-")) / "store.db"
        build(path, count)
        out = subprocess.run([sys.executable, "-c", MEASURE, str(path)], capture_output=True, text=True, check=True,
                             cwd=ROOT).stdout.split()
        results[count] = (float(out[0]), float(out[1]))
        print(f"{count:>7} deliveries: first page after {results[count][0] * 1000:.0f} ms (headless, app start included), "
              f"peak RSS {results[count][1]:.1f} MiB")
    print(f"100k vs 1k: time {results[100_000][0] / results[1_000][0]:.2f}x (target 100k <= 1 s), "
          f"memory {results[100_000][1] / results[1_000][1]:.2f}x (target <= 1.5x)")


if __name__ == "__main__":
    main()
