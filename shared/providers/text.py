"""Text length in the units platforms count in, and the URLs in a text, each from a maintained
library rather than rules of our own: X's weighted characters (twitter-text's v3
configuration: URLs as 23, CJK and emoji as 2), extended grapheme clusters (Bluesky's unit)
and twitter-text's URL extractor, which checks top-level domains."""

from __future__ import annotations

import warnings

import grapheme

with warnings.catch_warnings():
    # twitter-text-parser reads its emoji table through pkg_resources, which warns on import.
    warnings.simplefilter("ignore")
    from twitter_text import extract_urls_with_indices, parse_tweet


def x_weighted_length(text: str) -> int:
    """X's weighted length; the limit it is measured against is 280."""
    return int(parse_tweet(text).weightedLength)


def urls(text: str) -> list[tuple[int, int, str]]:
    """(start, end, URL as written) of each URL in the text, with or without a scheme."""
    return [(int(found["indices"][0]), int(found["indices"][1]), str(found["url"]))
            for found in extract_urls_with_indices(text)]


def graphemes(text: str) -> int:
    """User-perceived characters (Unicode extended grapheme clusters)."""
    return int(grapheme.length(text))


def utf16_units(text: str) -> int:
    """UTF-16 code units, as JavaScript's `length` counts (Telegram, TikTok)."""
    return len(text.encode("utf-16-le")) // 2
