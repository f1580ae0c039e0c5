"""Broken data files (issue 10): one clear error naming the file, no traceback from deep inside."""
import gzip
import os
import struct
import zlib

import numpy as np
import pytest

from minitl.data.idx import IDXError, read_idx


def test_idx_size_check_does_not_overflow_for_huge_dimensions(tmp_path):
    # 2^32-1 cubed float64 items: an int64 product wraps around (to a small or negative number)
    path = tmp_path / "huge.idx"
    path.write_bytes(struct.pack(">BBBB", 0, 0, 0x0E, 3) + struct.pack(">3I", *[2 ** 32 - 1] * 3) + b"\0" * 8)
    with pytest.raises(IDXError, match="truncated: header says shape") as caught:
        read_idx(path)
    assert str(path) in str(caught.value)
    wrap = tmp_path / "wrap.idx"  # 2^21 x 2^21 x 2^21 x 8 bytes = 2^66: int64 wraps to exactly 0
    wrap.write_bytes(struct.pack(">BBBB", 0, 0, 0x0E, 3) + struct.pack(">3I", *[2 ** 21] * 3))
    with pytest.raises(IDXError, match="truncated"):
        read_idx(wrap)


def test_idx_gzip_bomb_stops_at_the_limit(tmp_path):
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # a gzip stream of 80 MiB of zeros (~80 KB)
    header = struct.pack(">BBBB", 0, 0, 0x08, 1) + struct.pack(">I", 80 * 2 ** 20)
    blob = compressor.compress(header) + b"".join(compressor.compress(bytes(2 ** 20)) for _ in range(80))
    blob += compressor.flush()
    path = tmp_path / "bomb.idx.gz"
    path.write_bytes(blob)
    assert len(blob) < 200_000
    with pytest.raises(IDXError, match="inflates past 67,108,864 bytes"):
        read_idx(path)
    small = tmp_path / "ok.idx.gz"
    small.write_bytes(gzip.compress(struct.pack(">BBBB", 0, 0, 0x08, 1) + struct.pack(">I", 3) + b"\1\2\3"))
    assert read_idx(small).tolist() == [1, 2, 3]


PIL = pytest.importorskip("PIL")


def _png(path, value=5):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((4, 4, 3), value, np.uint8)).save(path)


def test_symlink_loop_among_images_names_the_file(tmp_path):
    from minitl.data.images import ImageFolder

    _png(tmp_path / "cat" / "a.png")
    os.symlink("b.png", tmp_path / "cat" / "loop.png")
    os.symlink("loop.png", tmp_path / "cat" / "b.png")
    with pytest.raises(ValueError, match=r"cannot read image file .*cat/(b|loop)\.png: Too many levels of symbolic links"):
        ImageFolder(tmp_path)


def test_non_utf8_names_are_errors_naming_the_file(tmp_path):
    from minitl.data.images import ImageFolder

    root = os.fsencode(tmp_path)
    _png(tmp_path / "cat" / "a.png")
    bad_file = os.path.join(root, b"cat", b"caf\xe9.png")
    os.rename(os.path.join(root, b"cat", b"a.png"), bad_file)
    with pytest.raises(ValueError, match=r"image file name is not valid UTF-8: .*caf\\xe9\.png; rename it"):
        ImageFolder(tmp_path)
    os.rename(bad_file, os.path.join(root, b"cat", b"a.png"))
    os.rename(os.path.join(root, b"cat"), os.path.join(root, b"c\xe4t"))
    with pytest.raises(ValueError, match=r"class folder name is not valid UTF-8: .*c\\xe4t"):
        ImageFolder(tmp_path)


def test_skip_bad_images_leaves_them_out_and_lists_them(tmp_path):
    from minitl.data import open_data
    from minitl.data.images import ImageFolder

    for cls in ("cat", "dog"):
        for i in range(5):
            _png(tmp_path / cls / f"{i}.png", 40 * i)
    (tmp_path / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)  # a PNG signature, no image
    (tmp_path / "cat" / "text.jpg").write_text("not a jpeg")
    strict = ImageFolder(tmp_path)
    assert len(strict) == 12
    with pytest.raises(ValueError, match=r"cannot decode image file .*broken\.png"):
        strict[[p for p, _ in strict.samples].index(str(tmp_path / "dog" / "broken.png"))]
    lenient = ImageFolder(tmp_path, skip_bad=True)
    assert len(lenient) == 10 and sorted(os.path.basename(s["path"]) for s in lenient.skipped) == ["broken.png", "text.jpg"]
    splits = open_data(str(tmp_path), skip_bad_images=True)
    assert len(splits.train) + len(splits.test) == 10 and len(splits.skipped) == 2
    assert any("skipped 2 image(s)" in note for note in splits.notes)


def test_cli_has_skip_bad_images_off_by_default():
    from minitl.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["finetune"]).skip_bad_images is False
    assert parser.parse_args(["finetune", "--skip-bad-images"]).skip_bad_images is True
