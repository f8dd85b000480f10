"""What a recipe's Python half hands back to its bash half: the command, the info line, a few values bash
needs for running it (run dir, processes), and the settings parsing all recipes share."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field


class RecipeError(Exception):
    """Bad settings or inputs: the message (one or more lines) goes to stderr as it is, the exit status is 2."""


@dataclass
class Plan:
    command: list[str]
    info: str
    values: dict[str, str] = field(default_factory=dict)  # NAME -> value, for bash (declare NAME=value)

    def write(self, path: str) -> None:
        """NUL-terminated fields: ``NAME=value`` for each value, ``INFO=<line>``, then ``--`` and the command
        (bash: ``mapfile -d ''``), so that no quoting stands between Python's words and bash's."""
        fields = [f"{name}={value}" for name, value in self.values.items()] + [f"INFO={self.info}", "--", *self.command]
        with open(path, "w", encoding="utf-8") as out:
            out.write("".join(f + "\0" for f in fields))


@dataclass
class Invocation:
    """How a recipe was called, the same for every recipe: the repository, the Python whose ``fairseq-train`` runs,
    the script as invoked (named in errors), whether stdout is a terminal (progress bars), where progress lines go."""

    root: str
    python: str
    header: str
    interactive: bool = False
    say: Callable[[str], None] = print

    @property
    def fairseq_train(self) -> str:
        return os.path.join(os.path.dirname(self.python), "fairseq-train")

    @property
    def user_dir(self) -> str:
        return os.path.join(self.root, "stabletune_fairseq")


def parse_settings(words: list[str], defaults: dict[str, str], script: str, header: str) -> tuple[dict, list[str]]:
    """``KEY=VALUE ... [-- fairseq args]`` over ``defaults`` (the later of two wins) -> (settings, fairseq args).
    ``header``: the script as invoked, named in the error for an unknown key."""
    settings, extra = dict(defaults), []
    for i, word in enumerate(words):
        if word == "--":
            extra = words[i + 1 :]
            break
        key, sep, value = word.partition("=")
        if not sep or key not in defaults:
            raise RecipeError(f"{script}: unknown setting '{word}' (see the header of {header})")
        settings[key] = value
    return settings, extra


def positive_int(settings: dict, key: str, script: str) -> int:
    """A count the recipe does arithmetic with (NPROC=, UPDATE_FREQ=, BSZ=)."""
    value = settings[key]
    if not value.isdigit() or int(value) < 1:
        raise RecipeError(f"{script}: {key} must be a positive integer (got '{value}')")
    return int(value)


def read_metadata(data: str, script: str) -> tuple[dict, str]:
    """``<data>/metadata.json``: parsed, and its text (some checks look for a key anywhere in it)."""
    path = os.path.join(data, "metadata.json")
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    try:
        return json.loads(text), text
    except ValueError as err:
        raise RecipeError(f"{script}: {path} is not valid JSON ({err}); run the preprocessing again") from None


def refuse_save_dir_in_use(save_dir: str, dry_run: str) -> None:
    """One run per save dir: a dir in use is refused before anything touches it (fairseq-train takes the lock
    itself, in its first rank); a dry run only prints."""
    from ..reliability.save_dir_lock import SaveDirInUse, check_free

    if dry_run != "0":
        return
    try:
        check_free(save_dir)
    except SaveDirInUse as err:
        raise RecipeError(f"error: {err}") from None
