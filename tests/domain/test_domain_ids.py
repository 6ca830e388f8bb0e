"""Random identifiers: length, alphabet, and every character equally likely."""

from __future__ import annotations

import string
from collections import Counter

from tactful.domain.common import new_id, new_secret_id

ALPHABET = set(string.ascii_letters + string.digits)


def test_ids_have_their_length_and_only_url_safe_characters() -> None:
    ids = [new_id() for _ in range(2000)]
    secrets = [new_secret_id() for _ in range(500)]
    assert {len(i) for i in ids} == {10} and {len(s) for s in secrets} == {32}
    assert set("".join(ids + secrets)) <= ALPHABET
    assert len(set(ids)) == len(ids) and len(set(secrets)) == len(secrets)


def test_every_character_is_about_equally_likely() -> None:
    # 200,000 characters: 3,226 of each expected, a standard deviation of about 56. A mapping
    # of bytes by modulo alone would give the first 8 characters 5/4 of the others' share.
    counts = Counter("".join(new_id() for _ in range(20_000)))
    assert set(counts) == ALPHABET
    expected = 200_000 / len(ALPHABET)
    assert all(abs(n - expected) < 0.1 * expected for n in counts.values()), counts
