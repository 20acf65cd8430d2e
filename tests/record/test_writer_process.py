"""The pipe between the app and its writer process: frames cut anywhere by the pipe's reads
come out whole, in order, and a frame cut short waits for the rest."""

from hookinspect.record.writer_process import frame, split_frames


def test_frames_cut_anywhere_come_out_whole_and_in_order():
    items = [("POST", "/webhooks/stripe", b"x" * size) for size in (0, 1, 700, 7_000)]
    data = b"".join(frame(item) for item in items)
    for step in (1, 3, 4, 5, 4096, len(data)):  # what one read of the pipe may hand over
        out, pending = [], b""
        for start in range(0, len(data), step):
            values, pending = split_frames(pending + data[start:start + step])
            out += values
        assert out == items and pending == b""


def test_a_frame_cut_short_waits_for_the_rest():
    whole = frame(("POST", "/x", b"{}"))
    values, pending = split_frames(whole + whole[:7])
    assert values == [("POST", "/x", b"{}")] and pending == whole[:7]
