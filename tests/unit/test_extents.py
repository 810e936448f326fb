"""Extents: the arithmetic every cycle depends on."""

from vmigrate_lib.extents import Extent, align, clip, from_blocks, normalize, split, total, union


def test_normalize_merges_overlapping_and_touching_and_drops_empty() -> None:
    got = normalize([(10, 5), (0, 5), (5, 5), (30, 0), (12, 10), (40, 1)])
    assert got == [Extent(0, 22), Extent(40, 1)]


def test_clip_keeps_only_the_window() -> None:
    ext = [Extent(0, 10), Extent(20, 10), Extent(40, 10)]
    assert clip(ext, 5, 25) == [Extent(5, 5), Extent(20, 5)]
    assert clip(ext, 100, 200) == []


def test_union_of_resume_parts_covers_both() -> None:
    early = clip([Extent(0, 4096), Extent(65536, 4096)], 0, 65536)
    late = clip([Extent(0, 1 << 20)], 65536, 1 << 20)
    assert union(early, late) == [Extent(0, 4096), Extent(65536, (1 << 20) - 65536)]


def test_align_widens_to_grain_and_respects_limit() -> None:
    assert align([Extent(100, 10)], 64) == [Extent(64, 64)]
    assert align([Extent(1000, 100)], 512, limit=1050) == [Extent(512, 538)]


def test_split_and_total() -> None:
    pieces = list(split([Extent(0, 10), Extent(100, 3)], 4))
    assert pieces == [Extent(0, 4), Extent(4, 4), Extent(8, 2), Extent(100, 3)]
    assert total(pieces) == 13


def test_from_blocks_merges_runs_and_clips_last_block() -> None:
    assert from_blocks([3, 1, 2, 7], 10, limit=75) == [Extent(10, 30), Extent(70, 5)]
