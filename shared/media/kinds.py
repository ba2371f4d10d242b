"""What a media file is, taken from its own bytes: the type from its first bytes (puremagic),
then, once stored, an image's dimensions (Pillow) or a video's duration and dimensions
(MediaInfo), read through a seekable view of the stored bytes so nothing is held whole."""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO

import puremagic
from PIL import Image, UnidentifiedImageError
from pymediainfo import MediaInfo

#: The types API.md accepts, and what a file of each must prove to be once read in full:
#: Pillow's format for an image, MediaInfo's container format for a video.
IMAGES = {"image/jpeg": "JPEG", "image/png": "PNG", "image/gif": "GIF", "image/webp": "WEBP"}
VIDEOS = {"video/mp4": "MPEG-4", "video/quicktime": "MPEG-4", "video/webm": "WebM"}
ACCEPTED = frozenset(IMAGES) | frozenset(VIDEOS)
#: How much of the start of a file the type is told from (a WebM's DocType, an MP4's brands).
HEAD_BYTES = 64 * 1024


class UnsupportedMedia(Exception):
    """Not one of the accepted types, or not a readable file of the type its bytes claim."""


@dataclass(frozen=True)
class Probe:
    width: int | None = None
    height: int | None = None
    duration_seconds: float | None = None


def sniff(head: bytes) -> str:
    """The MIME type of a file starting with `head`; UnsupportedMedia for any other type."""
    try:
        kind = str(puremagic.from_string(head, mime=True))
    except (puremagic.PureError, ValueError):
        kind = ""
    if kind not in ACCEPTED:
        described = f"({kind})" if kind else "(unrecognised)"
        raise UnsupportedMedia(f"the file's type {described} is not one of "
                               f"{', '.join(sorted(ACCEPTED))}")
    return kind


def probe(kind: str, file: BinaryIO) -> Probe:
    """An image's dimensions or a video's duration and dimensions, reading only what the
    format needs (a header, a video's index wherever it lies). Blocking: run it in a thread."""
    if kind in IMAGES:
        return _image(kind, file)
    return _video(kind, file)


def _image(kind: str, file: BinaryIO) -> Probe:
    try:
        with Image.open(file) as image:
            found, (width, height) = image.format, image.size
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as exc:
        raise UnsupportedMedia(f"the file starts as {kind} but is not a readable image") from exc
    if found != IMAGES[kind]:
        raise UnsupportedMedia(f"the file starts as {kind} but reads as {found}")
    return Probe(width=width, height=height)


def _video(kind: str, file: BinaryIO) -> Probe:
    info = MediaInfo.parse(file)
    general = info.general_tracks[0] if info.general_tracks else None
    if general is None or general.format != VIDEOS[kind]:
        raise UnsupportedMedia(f"the file starts as {kind} but is not a readable {kind} file")
    if not info.video_tracks:
        raise UnsupportedMedia(f"the {kind} file has no video track")
    video = info.video_tracks[0]
    duration = _number(general.duration) or _number(video.duration)
    return Probe(width=_whole(video.width), height=_whole(video.height),
                 duration_seconds=None if duration is None else round(duration / 1000, 3))


def _number(value: object) -> float | None:
    """MediaInfo's values come as numbers or as their text."""
    if not isinstance(value, (int, float, str)):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _whole(value: object) -> int | None:
    number = _number(value)
    return None if number is None else int(number)
