"""The record middleware's writer process (`python -m hookinspect.record.child`, started by
record/writer_process.ProcessSink): settings first, then exchanges until the pipe closes,
written a pipeful at a time by a RecordingSink in this thread; its counts, and what it has to
say, go back as JSON lines."""

from __future__ import annotations

import json
import sys
import threading
import time

from hookinspect.record.exchange import Exchange
from hookinspect.record.sink import LINGER_SECONDS, RecordingSink
from hookinspect.record.writer_process import (
    COUNTS,
    PIPE_BYTES,
    REPORT_SECONDS,
    read_frame,
    split_frames,
)


def main() -> None:
    """The child: settings first, then exchanges until the pipe closes; counts on stdout."""
    stdin, out = sys.stdin.buffer, sys.stdout
    settings, secrets = read_frame(stdin)
    lock = threading.Lock()

    def say(line: str) -> None:
        with lock:
            out.write(json.dumps({"say": line}) + "\n")
            out.flush()

    sink = RecordingSink(settings, secrets, say=say, threaded=False)
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
    pending = b""
    # Whatever the pipe holds is one batch. After a small one the writer waits a little, so
    # the next holds more (a commit costs more than its rows) and the app's writes to the pipe
    # mostly find nobody to wake. While it writes, the pipe fills; when full, the app drops.
    while chunk := stdin.read1(PIPE_BYTES):
        values, pending = split_frames(pending + chunk)
        sink.write([Exchange.from_wire(value) for value in values])
        if len(chunk) < PIPE_BYTES // 2:
            time.sleep(LINGER_SECONDS)
    sink.close()
    stop.set()
    reporter.join()


if __name__ == "__main__":
    main()
