"""The numbers behind a virtual list: newest first across the scanned part and the arrivals."""

from hookinspect.views.seq_index import SeqIndex


def index_of(scanned, arrived):
    index = SeqIndex()
    index.extend_older(scanned)
    index.add_newer(arrived)
    return index


def test_positions_run_newest_first_across_arrivals_and_the_scan():
    index = index_of([9, 7, 4, 2], [11, 12, 15])
    assert list(index) == [15, 12, 11, 9, 7, 4, 2]
    assert [index[i] for i in range(len(index))] == list(index)
    assert index[-1] == 2 and index.newest == 15
    assert index.slice(2, 5) == [11, 9, 7] and index.slice(0, 2) == [15, 12]


def test_lookups_find_a_number_or_the_next_older_one():
    index = index_of([9, 7, 4, 2], [11, 15])
    assert [index.index_of(s) for s in (15, 11, 9, 2)] == [0, 1, 2, 5]
    assert index.index_of(8) is None and index.index_of(99) is None
    assert index.nearest_index(8) == 3  # 7, the next older
    assert index.nearest_index(13) == 1  # 11
    assert index.nearest_index(1) == len(index)  # nothing older
    assert index.nearest_index(100) == 0


def test_arrivals_already_shown_are_skipped_and_removal_keeps_order():
    index = index_of([5, 3, 1], [])
    assert index.add_newer([4, 5, 6, 7]) == 2
    index.remove([6, 3])
    assert list(index) == [7, 5, 1]
    assert index.index_of(1) == 2


def test_restored_numbers_go_back_in_place():
    index = index_of([9, 7, 4, 2], [11, 15])
    index.complete = True
    index.remove([15, 7, 2])
    index.restore([2, 7, 15])
    assert list(index) == [15, 11, 9, 7, 4, 2]


def test_numbers_below_an_unfinished_scan_are_left_to_it():
    index = index_of([9, 7], [])
    index.remove([7])
    index.restore([7, 3])
    assert list(index) == [9, 7]  # 3 is below what the scan reached: it finds it itself


def test_numbers_without_gaps_take_one_run_and_gaps_a_run_each():
    from hookinspect.views.seq_index import runs_of

    assert runs_of(list(range(1_000_000, 0, -1))) == [(1_000_000, 1)]
    assert runs_of([10, 9, 8, 5, 4, 1]) == [(10, 8), (5, 4), (1, 1)]
    index = SeqIndex()
    index.extend_older(range(100_000, 50_000, -1))
    index.extend_older(range(50_000, 0, -1))
    assert index.runs == 1 and len(index) == 100_000 and index[99_999] == 1 and index[0] == 100_000
    index.remove([70_000, 70_001, 5])
    assert index.runs == 3 and len(index) == 99_997
    assert index.index_of(69_999) == 100_000 - 69_999 - 2 and index.index_of(70_000) is None
    index.complete = True
    index.restore([70_000, 5, 70_001])
    assert index.runs == 1 and list(index)[:3] == [100_000, 99_999, 99_998]


def test_the_index_agrees_with_a_plain_list_under_random_changes():
    import random

    rng = random.Random(7)
    seqs = sorted(rng.sample(range(1, 3000), 1200), reverse=True)
    index = SeqIndex()
    for start in range(0, len(seqs), 97):
        index.extend_older(seqs[start:start + 97])
    index.complete = True
    plain = list(seqs)
    for _ in range(50):
        gone = rng.sample(plain, 5)
        index.remove(gone)
        plain = [s for s in plain if s not in gone]
        back = rng.sample(gone, 2)
        index.restore(back)
        plain = sorted(plain + back, reverse=True)
    assert list(index) == plain and [index[i] for i in range(len(plain))] == plain
    assert all(index.index_of(s) == i for i, s in enumerate(plain))
