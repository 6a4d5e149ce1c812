"""Open a camera frame from an untrusted `frame_uri`, safely.

Used by the vision pipeline for every `camera.frames` event; try it with
`python -c "from backroom.vision.frames import open_frame; print(open_frame('x.jpg', root).shape)"`.

A frame reference comes from the network, so each check below refuses with `InvalidEvent`
(the reason goes to dead-letter) before anything expensive happens:

1. only a plain path or a `file://` URI (no host) — no http, s3, data: and so on;
2. no `..` component, no NUL; relative paths are taken under the frame root;
3. the fully resolved path (symlinks followed) must still be under the frame root;
4. a regular file no larger than `frame_max_bytes`;
5. real image magic bytes (JPEG or PNG), whatever the file is called;
6. width×height read from the header and checked against `frame_max_pixels` before decoding
   (a decompression bomb is small on disk and huge in memory);
7. complete: JPEG ends with EOI, PNG with IEND (OpenCV would decode a truncated file into a
   half-grey image without complaint), and the decoder must agree with the header.
"""

from __future__ import annotations

import os
import stat
import struct
from pathlib import Path
from urllib.parse import unquote, urlsplit

import cv2
import numpy as np

from backroom.records import InvalidEvent

JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"
# JPEG start-of-frame markers (baseline, progressive, …) carry the dimensions; C4/C8/CC do not.
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def resolve_frame_path(frame_uri: str, root: Path) -> Path:
    """The real path of `frame_uri` under `root`, or InvalidEvent saying why not."""
    if "\x00" in frame_uri:
        raise InvalidEvent("frame_uri contains a NUL byte")
    raw = frame_uri
    if "://" in frame_uri or frame_uri.lower().startswith(("file:", "data:", "http:", "https:")):
        parts = urlsplit(frame_uri)
        if parts.scheme.lower() != "file":
            raise InvalidEvent(
                f"frame_uri scheme {parts.scheme!r} not allowed: only paths and file:// URIs"
            )
        if parts.netloc not in ("", "localhost"):
            raise InvalidEvent(f"frame_uri host {parts.netloc!r} not allowed in a file:// URI")
        if parts.query or parts.fragment:
            raise InvalidEvent("frame_uri must not carry a query or fragment")
        raw = unquote(parts.path)
        if "\x00" in raw:
            raise InvalidEvent("frame_uri contains a NUL byte")
    elif ":" in frame_uri.split("/", 1)[0] and not frame_uri.startswith("/"):
        # "c:\\x", "s3:bucket/x" and friends: a scheme-like prefix on something not a URI.
        raise InvalidEvent(f"frame_uri {frame_uri[:60]!r} looks like a URI with an unknown scheme")
    if not raw:
        raise InvalidEvent("frame_uri has an empty path")
    p = Path(raw)
    if ".." in p.parts:
        raise InvalidEvent("frame_uri path traversal ('..') not allowed")
    root = Path(root).resolve()
    candidate = p if p.is_absolute() else root / p
    # Lexically under the root first (a plain escape), then after resolving symlinks.
    if not candidate.is_relative_to(root):
        raise InvalidEvent(f"frame_uri {raw[:120]!r} is outside the frame root")
    try:
        real = candidate.resolve(strict=True)
    except FileNotFoundError:
        raise InvalidEvent(f"frame not found: {raw[:120]!r}") from None
    except (OSError, RuntimeError) as exc:  # symlink loops, permission problems
        raise InvalidEvent(f"frame cannot be resolved: {type(exc).__name__}") from None
    if not real.is_relative_to(root):
        raise InvalidEvent("frame_uri resolves (through a symlink) outside the frame root")
    return real


def image_header(data: bytes) -> tuple[str, int, int]:
    """(format, width, height) from the magic bytes and header, without decoding pixels."""
    if data.startswith(PNG_MAGIC):
        if len(data) < 33 or data[12:16] != b"IHDR":
            raise InvalidEvent("truncated PNG: no IHDR header")
        w, h = struct.unpack(">II", data[16:24])
        return "png", w, h
    if data.startswith(JPEG_MAGIC):
        i = 2
        n = len(data)
        while i + 4 <= n:
            if data[i] != 0xFF:
                raise InvalidEvent("corrupt JPEG: marker expected")
            marker = data[i + 1]
            if marker == 0xFF:  # fill byte
                i += 1
                continue
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                i += 2
                continue
            (seg,) = struct.unpack(">H", data[i + 2 : i + 4])
            if marker in _SOF:
                if i + 9 > n:
                    break
                h, w = struct.unpack(">HH", data[i + 5 : i + 9])
                return "jpeg", w, h
            if marker == 0xDA:  # scan data before any frame header
                break
            i += 2 + seg
        raise InvalidEvent("truncated or corrupt JPEG: no frame header")
    raise InvalidEvent("not an image: expected JPEG or PNG magic bytes")


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    """Checked decode of JPEG/PNG bytes into a BGR array."""
    fmt, w, h = image_header(data)
    if w == 0 or h == 0:
        raise InvalidEvent(f"{fmt} header has zero size {w}x{h}")
    if w * h > max_pixels:
        raise InvalidEvent(
            f"{fmt} of {w}x{h} = {w * h} pixels exceeds frame_max_pixels {max_pixels}"
            " (possible decompression bomb)"
        )
    tail = data[-64:].rstrip(b"\x00")
    if fmt == "jpeg" and not tail.endswith(b"\xff\xd9"):
        raise InvalidEvent("truncated JPEG: no end-of-image marker")
    if fmt == "png" and not data.endswith(PNG_IEND):
        raise InvalidEvent("truncated PNG: no IEND chunk")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise InvalidEvent(f"{fmt} could not be decoded")
    if img.shape[1] != w or img.shape[0] != h:
        raise InvalidEvent(f"{fmt} decoded to {img.shape[1]}x{img.shape[0]}, header said {w}x{h}")
    return img


def read_frame_bytes(path: Path, max_bytes: int) -> bytes:
    # O_NOFOLLOW on the final component: the path was resolved already, so a symlink appearing
    # here means it was swapped in after the check.
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise InvalidEvent(f"frame cannot be opened: {exc.strerror}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise InvalidEvent("frame is not a regular file")
    with os.fdopen(fd, "rb") as f:
        if st.st_size > max_bytes:
            raise InvalidEvent(f"frame of {st.st_size} bytes exceeds frame_max_bytes {max_bytes}")
        if st.st_size == 0:
            raise InvalidEvent("frame file is empty")
        return f.read(max_bytes + 1)[:max_bytes]


def open_frame(
    frame_uri: str, root: Path, max_bytes: int = 20_000_000, max_pixels: int = 25_000_000
) -> np.ndarray:
    """The BGR image behind `frame_uri`, after every check above; else InvalidEvent."""
    path = resolve_frame_path(frame_uri, root)
    data = read_frame_bytes(path, max_bytes)
    return decode_image(data, max_pixels)


def save_frame(
    img: np.ndarray, root: Path, store_id: str, camera_id: str, name: str, quality: int = 90
) -> str:
    """Write a camera frame as JPEG under `root/store_id/camera_id/name.jpg`, atomically (a
    temporary file renamed into place, so the vision agent never reads half a frame), and
    return its frame_uri relative to the root — what a `camera.frames` event carries."""
    rel = Path(store_id) / camera_id / f"{name}.jpg"
    if ".." in rel.parts or rel.is_absolute():
        raise ValueError(f"unsafe frame name {rel}")
    dest = Path(root) / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    ok, enc = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    tmp = dest.with_name(f".{dest.name}.tmp")
    tmp.write_bytes(enc.tobytes())
    os.replace(tmp, dest)
    return rel.as_posix()
