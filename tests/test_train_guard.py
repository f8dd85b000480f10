"""The training guard (reliability/train_guard.py) is fairseq-train's only: importing the plugin elsewhere
(fairseq-validate, a notebook, this test process) leaves fairseq and torch as they are; fairseq-train and
``python -m fairseq_cli.train`` have it; a fairseq whose train loop it cannot hook into is refused; the atomic
copy keeps PathManager.copy's ``overwrite`` and leaves other file systems to fairseq.
(The guard's lock, preemption and exit statuses in real runs: test_resume.py, test_bad_inputs.py.)"""

import argparse
import os
import signal
import subprocess
import sys
import textwrap
import types

import fairseq
import fairseq_cli.train
import numpy as np
import pytest
import torch
from conftest import BIN, REPO, run
from fairseq import checkpoint_utils
from fairseq.file_io import PathManager

from stabletune_fairseq.reliability import train_guard
from stabletune_fairseq.reliability.disk_writes import atomic_copy, guarded_copy, is_local_path
from stabletune_fairseq.reliability.save_dir_lock import SaveDirLock


@pytest.fixture(scope="module")
def trained(e5_dir, toy_data, tmp_path_factory):
    """A real XNLI run's save dir (two updates)."""
    save_dir = tmp_path_factory.mktemp("guard-run")
    run(
        [
            "bash",
            "run_scripts/run_xtreme.sh",
            "XNLI",
            e5_dir / "model.pt",
            toy_data,
            save_dir,
            "MAX_UPDATE=2",
            "BSZ=8",
            "FREEZE_EMBEDDINGS=1",
            "VALID_LANGS=de",
        ]
    )
    return save_dir


def python(code: str, *args) -> list[str]:
    """What ``code``, run in a fresh interpreter, prints with ``say`` (fairseq logs to stdout too)."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *map(str, args)], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return [line[3:] for line in result.stdout.splitlines() if line.startswith(">> ")]


FAIRSEQ_STATE = """
    import signal, sys, torch
    import fairseq_cli.train
    from fairseq import checkpoint_utils
    from fairseq.distributed import utils as distributed_utils
    from fairseq.file_io import PathManager

    def state():
        return {"call_main": distributed_utils.call_main, "save_checkpoint": checkpoint_utils.save_checkpoint,
                "PathManager.copy": PathManager.copy, "validate_and_save": fairseq_cli.train.validate_and_save,
                "safe globals": set(torch.serialization.get_safe_globals()),  # a set in torch: its list order varies
                "SIGTERM": signal.getsignal(signal.SIGTERM), "SIGUSR1": signal.getsignal(signal.SIGUSR1)}

    def changed(before, after):
        return [name for name in before if after[name] is not before[name] and after[name] != before[name]]

    def say(*words):
        print(">>", *words, flush=True)
"""


def test_importing_the_plugin_and_loading_a_model_leave_fairseq_and_torch_as_they_are(trained, tmp_path):
    """``load_model`` of a checkpoint with a numpy statistic (as older fairseq versions wrote them): fairseq's own
    ``torch.load`` needs the allowed types, for that load only."""
    older = tmp_path / "older.pt"
    state = torch.load(trained / "checkpoint_best.pt", map_location="cpu", weights_only=True)
    state["extra_state"]["val_loss"] = np.float64(1.5)
    torch.save(state, older)
    said = python(
        FAIRSEQ_STATE
        + """
    before = state()
    import stabletune_fairseq
    say("import changed:", changed(before, state()))
    model = stabletune_fairseq.load_model(sys.argv[1])
    say("predictions:", len(model.predict([("A man sleeps.", "A person rests.")])))
    say("load_model changed:", changed(before, state()))
    """,
        older,
    )
    assert said == ["import changed: []", "predictions: 1", "load_model changed: []"]


def test_explicit_install_guards_this_process_once(tmp_path):
    """For callers that drive fairseq's train loop themselves; it also lets fairseq's own loads read a release's
    types (what fairseq-train resuming or --restore-file of an official release needs), and the plugin's scoped
    loads do not take that back."""
    release = tmp_path / "model.pt"
    torch.save({"args": argparse.Namespace(arch="roberta_base"), "model": {}}, release)
    said = python(
        FAIRSEQ_STATE
        + """
    before = state()
    try:
        torch.load(sys.argv[1])
    except Exception as error:
        say("refused before:", "argparse.Namespace" in str(error))
    from stabletune_fairseq.reliability import train_guard
    from stabletune_fairseq.reliability.checkpoint_safety import load_checkpoint_safely
    train_guard.install()
    once = state()
    train_guard.install()
    say("changed:", sorted(changed(before, once)), "again:", changed(once, state()))
    load_checkpoint_safely(sys.argv[1])
    say("loaded:", type(torch.load(sys.argv[1])["args"]).__name__)
    """,
        release,
    )
    assert said == [
        "refused before: True",
        "changed: ['PathManager.copy', 'call_main', 'safe globals', 'save_checkpoint'] again: []",
        "loaded: Namespace",
    ]


def validate(data, checkpoint, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            BIN / "fairseq-validate",
            data,
            "--user-dir",
            REPO / "stabletune_fairseq",
            "--task",
            "xtreme_sentence",
            "--criterion",
            "stability_consistency",
            "--path",
            checkpoint,
            "--valid-subset",
            "valid_de",
            "--batch-size",
            "8",
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
    )


def tree(root) -> dict:
    return {
        os.path.relpath(os.path.join(d, n), root): os.path.getsize(os.path.join(d, n))
        for d, dirs, files in os.walk(root)
        for n in dirs + files
    }


def test_fairseq_validate_beside_a_training_run_works_and_creates_nothing(trained, toy_data, tmp_path):
    """fairseq-validate's settings have a save dir too (./checkpoints): it must neither create it nor take its lock."""
    empty = tmp_path / "empty"
    empty.mkdir()
    result = validate(toy_data, trained / "checkpoint_best.pt", empty)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "valid on 'valid_de' subset" in result.stdout and os.listdir(empty) == []
    beside = tmp_path / "beside"
    lock = SaveDirLock(str(beside / "checkpoints")).acquire()  # a run training into ./checkpoints holds this
    try:
        before = tree(beside)
        result = validate(toy_data, trained / "checkpoint_best.pt", beside)
        assert result.returncode == 0, result.stderr[-3000:]
        assert "valid on 'valid_de' subset" in result.stdout and "in use" not in result.stdout + result.stderr
        assert tree(beside) == before and f'"pid": {os.getpid()}' in (beside / "checkpoints" / "train.lock").read_text()
    finally:
        lock.release()


@pytest.mark.parametrize("entry", ["fairseq-train", "python -m fairseq_cli.train"])
def test_fairseq_train_has_the_guard(entry, e5_dir, toy_data, tmp_path):
    """Both entry points take the save dir's lock: refused with status 2 while another process holds it."""
    save_dir = tmp_path / "run"
    command = [BIN / "fairseq-train"] if entry == "fairseq-train" else [sys.executable, "-m", "fairseq_cli.train"]
    command += [
        toy_data,
        "--user-dir",
        REPO / "stabletune_fairseq",
        "--task",
        "xtreme_sentence",
        "--arch",
        "stabletune_xlmr_e5_small",
        "--criterion",
        "stability_consistency",
        "--pretrained-encoder",
        e5_dir / "model.pt",
        "--batch-size",
        "8",
        "--optimizer",
        "adam",
        "--lr",
        "1e-5",
        "--max-update",
        "1",
        "--valid-subset",
        "valid",
        "--save-dir",
        save_dir,
        "--cpu",
        "--num-workers",
        "0",
    ]
    lock = SaveDirLock(str(save_dir)).acquire()
    try:
        result = subprocess.run([str(c) for c in command], cwd=tmp_path, capture_output=True, text=True)
    finally:
        lock.release()
    assert result.returncode == 2, result.stderr[-3000:]
    assert f"fairseq-train: save dir {save_dir} is in use by process {os.getpid()} on " in result.stderr
    assert "Traceback" not in result.stderr


def train_module(name: str, hook=None, calls_hook: bool = True) -> types.ModuleType:
    """A train module as another fairseq version might have it: ``main``, ``train`` and maybe ``hook``."""
    module = types.ModuleType(name)
    source = "def main(cfg):\n    train(cfg)\n\n"
    source += "def train(cfg):\n    " + ("validate_and_save(cfg)\n" if calls_hook else "save_and_validate(cfg)\n")
    if hook is not None:
        source += f"\ndef validate_and_save{hook}:\n    return [], False\n"
    exec(compile(source, f"<{name}>", "exec"), module.__dict__)
    return module


def test_fairseqs_own_train_loop_is_supported():
    train_guard.check_train_loop(fairseq_cli.train)


@pytest.mark.parametrize(
    "module, problem",
    [
        (
            train_module("old_train"),
            "old_train has no validate_and_save(cfg, trainer, task, epoch_itr, valid_subsets, end_of_epoch)",
        ),
        (
            train_module("new_train", hook="(cfg, trainer, task, epoch_itr, valid_subsets)"),
            "new_train.validate_and_save takes (cfg, trainer, task, epoch_itr, valid_subsets), not "
            "(cfg, trainer, task, epoch_itr, valid_subsets, end_of_epoch)",
        ),
        (
            train_module(
                "other_train", hook="(cfg, trainer, task, epoch_itr, valid_subsets, end_of_epoch)", calls_hook=False
            ),
            "other_train.train does not call validate_and_save",
        ),
    ],
)
def test_a_train_loop_the_guard_cannot_hook_into_is_refused(module, problem):
    with pytest.raises(train_guard.UnsupportedFairseq) as refused:
        train_guard.check_train_loop(module)
    message = str(refused.value)
    assert message.startswith(f"fairseq {fairseq.__version__} is not supported for training with this plugin: ")
    assert problem in message and "\n" not in message


def test_training_with_such_a_loop_stops_before_it_starts(monkeypatch, capsys):
    """What fairseq-train's ranks run (``guarded_main``): status 2 and one line, nothing installed or locked."""
    module = train_module("old_train")
    monkeypatch.setitem(sys.modules, "old_train", module)
    before = (checkpoint_utils.save_checkpoint, PathManager.copy, signal.getsignal(signal.SIGTERM))
    with pytest.raises(SystemExit) as stop:
        train_guard.guarded_main(module.main, cfg=None)  # refused before the settings are read
    assert stop.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"fairseq-train: fairseq {fairseq.__version__} is not supported")
    assert (checkpoint_utils.save_checkpoint, PathManager.copy, signal.getsignal(signal.SIGTERM)) == before


def test_the_atomic_copy_honours_overwrite(tmp_path, caplog):
    source, target = tmp_path / "checkpoint_1_2.pt", tmp_path / "checkpoint_last.pt"
    source.write_bytes(b"new")
    target.write_bytes(b"old")
    copy = guarded_copy(PathManager.copy)  # fairseq-train's PathManager.copy under the plugin
    for refuse in (atomic_copy, copy):
        with caplog.at_level("ERROR"):
            assert refuse(str(source), str(target)) is False  # as PathManager.copy (iopath) does
        assert target.read_bytes() == b"old" and f"{target}: the destination exists" in caplog.text
    assert copy(str(source), str(target), overwrite=True) is True and target.read_bytes() == b"new"
    assert copy(str(source), str(tmp_path / "checkpoint_best.pt")) is True  # a new file needs no overwrite
    assert (tmp_path / "checkpoint_best.pt").read_bytes() == b"new"
    assert sorted(os.listdir(tmp_path)) == ["checkpoint_1_2.pt", "checkpoint_best.pt", "checkpoint_last.pt"]


def test_non_local_paths_are_left_to_fairseqs_file_layer(tmp_path):
    """iopath serves ``<scheme>://`` paths with their own handlers; a local rename cannot."""
    calls = []

    def file_layer(src_path, dst_path, overwrite=False):  # the input: what PathManager.copy was before
        calls.append((src_path, dst_path, overwrite))
        return True

    copy = guarded_copy(file_layer)
    assert copy("s3://bucket/run/checkpoint_1_2.pt", "s3://bucket/run/checkpoint_last.pt", overwrite=True)
    local = tmp_path / "checkpoint_1_2.pt"
    local.write_bytes(b"weights")
    assert copy(str(local), "manifold://team/run/checkpoint_last.pt")
    assert calls == [
        ("s3://bucket/run/checkpoint_1_2.pt", "s3://bucket/run/checkpoint_last.pt", True),
        (str(local), "manifold://team/run/checkpoint_last.pt", False),
    ]
    assert copy(str(local), str(tmp_path / "checkpoint_last.pt"), overwrite=True) and len(calls) == 2
    assert (tmp_path / "checkpoint_last.pt").read_bytes() == b"weights"
    assert [is_local_path(p) for p in ("checkpoints/x.pt", "/abs/x.pt", tmp_path, "a:b.pt", "gs://b/x.pt")] == [
        True,
        True,
        True,
        True,
        False,
    ]
