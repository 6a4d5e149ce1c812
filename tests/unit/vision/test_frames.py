"""Every way a frame reference can be hostile. Run: `.venv/bin/pytest tests/unit/vision/test_frames.py`."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from backroom.records import InvalidEvent
from backroom.vision.frames import open_frame


def _jpeg(w: int = 64, h: int = 48) -> bytes:
    img = np.full((h, w, 3), 127, np.uint8)
    cv2.rectangle(img, (5, 5), (w // 2, h // 2), (0, 0, 255), -1)
    return cv2.imencode(".jpg", img)[1].tobytes()


def _png(w: int = 64, h: int = 48) -> bytes:
    return cv2.imencode(".png", np.zeros((h, w, 3), np.uint8))[1].tobytes()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_bomb(w: int = 30000, h: int = 30000) -> bytes:
    """A tiny file whose header claims 900 megapixels (the classic decompression bomb)."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    r = tmp_path / "frames"
    (r / "cam1").mkdir(parents=True)
    (r / "cam1" / "ok.jpg").write_bytes(_jpeg())
    (r / "cam1" / "ok.png").write_bytes(_png())
    return r


def _refused(uri: str, root: Path, match: str, **kw: int) -> None:
    with pytest.raises(InvalidEvent, match=match) as exc:
        open_frame(uri, root, **kw)
    assert exc.value.reason  # the reason is what goes to dead-letter


def test_plain_relative_absolute_and_file_uri_open(root: Path) -> None:
    for uri in (
        "cam1/ok.jpg",
        str(root / "cam1" / "ok.jpg"),
        f"file://{root}/cam1/ok.jpg",
        f"file://localhost{root}/cam1/ok.png",
    ):
        img = open_frame(uri, root)
        assert img.shape == (48, 64, 3)


@pytest.mark.parametrize(
    "uri",
    [
        "http://example.com/a.jpg",
        "https://x/a.jpg",
        "s3://bucket/a.jpg",
        "ftp://h/a.jpg",
        "data:image/jpeg;base64,/9j/",
        "gopher://h/x",
        "HTTP://X/a.jpg",
    ],
)
def test_other_schemes_refused(root: Path, uri: str) -> None:
    _refused(uri, root, "scheme")


def test_file_uri_with_host_refused(root: Path) -> None:
    _refused(f"file://evil.example{root}/cam1/ok.jpg", root, "host")


@pytest.mark.parametrize(
    "uri",
    [
        "../outside.jpg",
        "cam1/../../outside.jpg",
        "file:///{root}/cam1/../../outside.jpg",
        "cam1/%2e%2e/x",
    ],
)
def test_traversal_refused(root: Path, uri: str) -> None:
    (root.parent / "outside.jpg").write_bytes(_jpeg())
    uri = uri.replace("{root}", str(root).lstrip("/"))
    if "%2e" in uri:  # percent-encoded dots only decode inside a file:// URI
        uri = f"file://{root}/cam1/%2e%2e/%2e%2e/outside.jpg"
    _refused(uri, root, "traversal")


def test_absolute_path_outside_root_refused(root: Path) -> None:
    (root.parent / "outside.jpg").write_bytes(_jpeg())
    _refused(str(root.parent / "outside.jpg"), root, "outside the frame root")
    _refused("/etc/passwd", root, "outside the frame root")


def test_symlink_escape_refused(root: Path) -> None:
    secret = root.parent / "secret.jpg"
    secret.write_bytes(_jpeg())
    (root / "cam1" / "link.jpg").symlink_to(secret)
    (root / "escape_dir").symlink_to(root.parent)
    _refused("cam1/link.jpg", root, "symlink")
    _refused("escape_dir/secret.jpg", root, "symlink")


def test_symlink_inside_root_is_fine(root: Path) -> None:
    (root / "cam1" / "alias.jpg").symlink_to(root / "cam1" / "ok.jpg")
    assert open_frame("cam1/alias.jpg", root).shape == (48, 64, 3)


def test_missing_file_and_directory_refused(root: Path) -> None:
    _refused("cam1/nope.jpg", root, "not found")
    _refused("cam1", root, "not a regular file")


def test_non_image_refused_whatever_its_name(root: Path) -> None:
    (root / "cam1" / "fake.jpg").write_bytes(b"#!/bin/sh\necho pwned\n")
    (root / "cam1" / "empty.jpg").write_bytes(b"")
    (root / "cam1" / "doc.gif").write_bytes(b"GIF89a" + b"\x00" * 100)
    _refused("cam1/fake.jpg", root, "not an image")
    _refused("cam1/empty.jpg", root, "empty")
    _refused("cam1/doc.gif", root, "not an image")


def test_truncated_images_refused(root: Path) -> None:
    jpg, png = _jpeg(), _png()
    (root / "cam1" / "cut.jpg").write_bytes(jpg[: len(jpg) // 2])
    (root / "cam1" / "cut.png").write_bytes(png[: len(png) - 20])
    (root / "cam1" / "head.jpg").write_bytes(jpg[:10])
    _refused("cam1/cut.jpg", root, "truncated JPEG")
    _refused("cam1/cut.png", root, "truncated PNG")
    _refused("cam1/head.jpg", root, "truncated|corrupt")


def test_decompression_bomb_refused_before_decoding(root: Path) -> None:
    bomb = _png_bomb()
    assert len(bomb) < 200  # tiny on disk…
    (root / "cam1" / "bomb.png").write_bytes(bomb)
    _refused("cam1/bomb.png", root, "decompression bomb")
    # …and the pixel limit is a setting: a normal frame over a small limit is refused too.
    _refused("cam1/ok.jpg", root, "exceeds frame_max_pixels", max_pixels=1000)


def test_oversized_file_refused(root: Path) -> None:
    _refused("cam1/ok.jpg", root, "exceeds frame_max_bytes", max_bytes=100)


def test_nul_byte_refused(root: Path) -> None:
    _refused("cam1/ok.jpg\x00.png", root, "NUL")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_refused_without_blocking(root: Path) -> None:
    os.mkfifo(root / "cam1" / "pipe.jpg")
    _refused("cam1/pipe.jpg", root, "regular file")


def test_save_frame_round_trip(tmp_path: Path) -> None:
    from backroom.vision.frames import save_frame

    img = np.full((48, 64, 3), 200, np.uint8)
    uri = save_frame(img, tmp_path, "s1", "cam1", "20261127T091500Z")
    assert uri == "s1/cam1/20261127T091500Z.jpg"
    assert open_frame(uri, tmp_path).shape == (48, 64, 3)
    assert not list(tmp_path.rglob("*.tmp"))
    with pytest.raises(ValueError):
        save_frame(img, tmp_path, "..", "cam1", "x")
