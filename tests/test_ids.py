"""Identifiers: OpenAI's shape, random ones unique, derived ones stable across releases."""

from __future__ import annotations

import string

from core import ids


def test_new_ids_have_the_prefix_and_24_alphanumerics_and_do_not_repeat() -> None:
    made = {ids.new_id(ids.RUN) for _ in range(5000)}
    assert len(made) == 5000
    alphabet = set(string.ascii_letters + string.digits)
    for value in made:
        prefix, _, body = value.partition("_")
        assert prefix == "run" and len(body) == 24 and set(body) <= alphabet
        assert ids.has_prefix(value, ids.RUN)
    # Every character position varies (a broken encoder would pad with one letter).
    for position in range(24):
        assert len({value[4 + position] for value in made}) > 40


def test_derived_ids_are_stable_across_releases() -> None:
    # A retried activity re-derives the ids of rows an earlier attempt (perhaps an earlier
    # release) wrote; a changed derivation would insert duplicates instead of no-ops.
    assert ids.derived_id(ids.MESSAGE, "a", "b") == "msg_Nz4Zu3UiierWxYuirGHfXOQa"
    assert ids.derived_id(ids.MESSAGE, "a", "b") != ids.derived_id(ids.MESSAGE, "a", "c")
