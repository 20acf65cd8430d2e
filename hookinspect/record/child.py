"""The record middleware's writer process (`python -m hookinspect.record.child`, started by
record/writer_process.ProcessSink): settings first, then exchanges until the pipe closes, each
handed to a RecordingSink; its counts, and what it has to say, go back as JSON lines."""

from __future__ import annotations

import json
import sys
import threading

from hookinspect.record.exchange import Exchange
from hookinspect.record.sink import RecordingSink
from hookinspect.record.writer_process import COUNTS, REPORT_SECONDS, read_frame


def main() -> None:
    """The child: settings first, then exchanges until the pipe closes; counts on stdout."""
    stdin, out = sys.stdin.buffer, sys.stdout
    settings, secrets = read_frame(stdin)
    lock = threading.Lock()

    def say(line: str) -> None:
        with lock:
            out.write(json.dumps({"say": line}) + "\n")
            out.flush()

    sink = RecordingSink(settings, secrets, say=say)
    stop = threading.Event()

    def report() -> None:
        last = None
        while True:
            ended = stop.wait(REPORT_SECONDS)
            counts = {name: getattr(sink, name) for name in COUNTS}
            if counts != last:
                with lock:
                    out.write(json.dumps(counts) + "\n")
                    out.flush()
                last = counts
            if ended:
                return

    reporter = threading.Thread(target=report, daemon=True)
    reporter.start()
    while (values := read_frame(stdin)) is not None:
        sink.offer(Exchange.from_wire(values), wait=True)
    sink.close(timeout=30)
    stop.set()
    reporter.join()


if __name__ == "__main__":
    main()
