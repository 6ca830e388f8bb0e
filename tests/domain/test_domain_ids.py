"""Random identifiers: length, alphabet, and every character equally likely."""

from __future__ import annotations

import string
from collections import Counter

from tactful.domain.common import new_id, new_secret_id
from tactful.scenarios.record import generated

ALPHABET = set(string.ascii_letters + string.digits)


def test_ids_have_their_length_and_only_url_safe_characters() -> None:
    ids = [new_id() for _ in range(2000)]
    secrets = [new_secret_id() for _ in range(500)]
    assert {len(i) for i in ids} == {10} and {len(s) for s in secrets} == {32}
    assert set("".join(ids + secrets)) <= ALPHABET
    assert len(set(ids)) == len(ids) and len(set(secrets)) == len(secrets)


def test_a_server_made_id_is_always_told_from_a_name() -> None:
    # A recorded scenario names a state with a server-made id by what it does: an id without
    # a capital letter (one in 228 before) was taken for a name and recorded as is.
    ids = [new_id() for _ in range(5000)]
    assert all(i[0].isupper() for i in ids)
    assert all(generated(i) for i in ids)


def test_every_character_is_about_equally_likely() -> None:
    # 200,007 characters after each id's first: 3,226 of each expected, a standard deviation of
    # about 56. A mapping of bytes by modulo alone would give the first 8 characters 5/4 of the
    # others' share.
    counts = Counter("".join(new_id()[1:] for _ in range(22_223)))
    assert set(counts) == ALPHABET
    expected = 22_223 * 9 / len(ALPHABET)
    assert all(abs(n - expected) < 0.1 * expected for n in counts.values()), counts
