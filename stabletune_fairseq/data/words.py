"""Words of an encoded text: groups of dictionary ids, a new group at each piece starting with ``▁``."""

from __future__ import annotations

WORD_START = "\u2581"


def word_groups(ids, dictionary) -> list[list[int]]:
    """Split ids into words; pieces before the first ``▁`` piece form a word of their own."""
    groups: list[list[int]] = []
    for i in ids:
        i = int(i)
        if not groups or dictionary[i].startswith(WORD_START):
            groups.append([i])
        else:
            groups[-1].append(i)
    return groups


def word_text(group: list[int], dictionary) -> str:
    """The (normalised) surface form of a word, without its ``▁``."""
    return "".join(dictionary[i] for i in group).lstrip(WORD_START)
