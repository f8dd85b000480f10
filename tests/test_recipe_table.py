"""The recipe table (stabletune_fairseq/recipes/defaults.py) read as data, its settings parsing and run_seeds.sh's
record of settings: no training, no dataset (the dry runs of test_recipe_defaults.py check the printed commands)."""

import dataclasses
import re
import shlex
import subprocess
import sys

import pytest
from conftest import REPO

from stabletune_fairseq.recipes import defaults as table
from stabletune_fairseq.recipes.plan import RecipeError, parse_settings
from stabletune_fairseq.recipes.run_record import recorded_settings, settings_record
from stabletune_fairseq.recipes.xtreme import setting_defaults

XTREME = ("XNLI", "PAWSX", "UDPOS", "PANX", "XQUAD", "MLQA", "TYDIQA", "SQUAD")
GLUE = ("COLA", "SST2", "MRPC", "QQP", "STSB", "MNLI", "QNLI", "RTE", "WNLI")


def test_panx_stage2_takes_hard_labels_with_the_reference_lambdas():
    tta = table.XTUNE_STAGES[("PANX", table.TTA)]
    assert (tta.lambda2, tta.r2_hard) == (1.0, True)
    assert (tta.stage2_copy, tta.stage2_view) == ("translation", "subword_sampling")
    assert tta.stage1_view == "subword_sampling" and tta.view_prob == 0.3
    clt = table.XTUNE_STAGES[("PANX", table.CLT)]
    assert (clt.lambda2, clt.r2_hard, clt.stage2_copy) == (5.0, True, "subword_sampling")
    assert not any(recipe.r2_hard for (task, _), recipe in table.XTUNE_STAGES.items() if task != "PANX")


def test_xtreme_rows():
    xnli = table.TASKS["XNLI"]
    assert (xnli.lr("stabletune_xlmr_base"), xnli.lr("stabletune_xlmr_large")) == ("7e-6", "5e-6")
    assert xnli.warmup_ratio == 0 and xnli.validate_interval == "5000" and xnli.batch == 32
    assert table.TASKS["PAWSX"].validate_interval == "1000" and table.TASKS["UDPOS"].pooling == "sum"
    assert table.TASKS["PANX"].pooling == "first" and table.TASKS["PANX"].lr("x_large") == "7e-6"
    tydiqa = table.TASKS["TYDIQA"]
    assert (tydiqa.epochs("stabletune_xlmr_base"), tydiqa.epochs("stabletune_xlmr_large")) == (20, 10)
    for task in ("XQUAD", "MLQA", "SQUAD", "TYDIQA", "UDPOS", "PANX"):
        assert table.TASKS[task].warmup_ratio == 0.1, task
    for task in ("XQUAD", "MLQA", "SQUAD", "TYDIQA"):
        assert table.TASKS[task].validate_interval == "0" and table.TASKS[task].metric == "f1"
    # QA translate-train-all: the copies are translations, the views subword sampling, lambda2 per task
    assert [table.XTUNE_STAGES[(t, table.TTA)].lambda2 for t in ("XQUAD", "MLQA", "TYDIQA")] == [0.1, 0.5, 0.3]
    assert table.XTUNE_STAGES[("XNLI", table.TTA)].view_prob is None  # translation views have no probability


def test_glue_rows_are_amos_table():
    amos = {
        "MNLI": (32, "1e-5", 3, 16),
        "QQP": (32, "2e-5", 5, 16),
        "QNLI": (32, "2e-5", 3, 16),
        "SST2": (32, "1e-5", 5, 16),
        "COLA": (32, "2e-5", 10, 10),
        "RTE": (32, "4e-5", 5, 10),
        "MRPC": (32, "4e-5", 10, 16),
        "STSB": (16, "4e-5", 10, 16),
        "WNLI": (32, "4e-5", 5, 10),
    }
    for task, (batch, lr, epochs, warmup) in amos.items():
        row = table.TASKS[task]
        assert (row.batch, row.lr_base, row.lr_large, row.epochs_base, row.epochs_large) == (
            batch,
            lr,
            lr,
            epochs,
            epochs,
        ), task
        assert row.warmup_ratio == 1 / warmup and row.validate_interval == "half" and row.fairseq_task == "glue"
    assert table.TASKS["MNLI"].metric == "acc_m" and table.TASKS["STSB"].metric == "pearson_spearman_en"
    assert table.TASKS["COLA"].metric == "mcc_en"


def test_every_cross_lingual_task_has_both_settings_and_glue_none():
    assert set(table.TASKS) == set(XTREME) | set(GLUE)
    assert set(table.XTUNE_STAGES) == {(task, setting) for task in XTREME for setting in table.SETTINGS}


def test_every_row_names_its_source_of_its_own_setting():
    for task, row in table.TASKS.items():
        assert row.source, task
        if row.fairseq_task != "glue":
            script = "xquad" if task == "SQUAD" else task.lower()
            assert f"cross-lingual-transfer/train_{script}.sh:" in row.source, task
        else:
            assert "AMOS fairseq/README.md" in row.source
    for (task, setting), recipe in table.XTUNE_STAGES.items():
        script = "xquad" if task == "SQUAD" else task.lower()
        assert re.search(rf"scripts/{setting}/train_{script}\.sh:\d", recipe.source), (task, setting)


def test_rows_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        table.TASKS["XNLI"].lr_base = "1e-3"


def test_setting_defaults_come_from_the_table():
    rte = setting_defaults(table.TASKS["RTE"], interactive=False)
    assert rte["WARMUP_RATIO"] == "0.1" and rte["VALIDATE_INTERVAL_UPDATES"] == "half" and rte["PROGRESS"] == "0"
    xnli = setting_defaults(table.TASKS["XNLI"], interactive=True)
    assert float(xnli["WARMUP_RATIO"]) == 0 and xnli["VALIDATE_INTERVAL_UPDATES"] == "5000" and xnli["PROGRESS"] == "1"
    assert xnli["R1_LAMBDA"] == "5.0" and xnli["RDROP_ALPHA"] == "1.0" and xnli["R3F_EPS"] == "1e-5"
    assert xnli["KD_T"] == "10" and xnli["CON_T"] == "0.07"


def test_settings_parsing():
    defaults = {"SEED": "1", "LR": ""}
    settings, extra = parse_settings(["LR=1e-5", "SEED=2", "SEED=3", "--", "--max-tokens", "9"], defaults, "r.sh", "h")
    assert settings == {"SEED": "3", "LR": "1e-5"} and extra == ["--max-tokens", "9"]
    message = r"^r\.sh: unknown setting 'EPOCH=3' \(see the header of run_scripts/r\.sh\)$"
    with pytest.raises(RecipeError, match=message):
        parse_settings(["EPOCH=3"], defaults, "r.sh", "run_scripts/r.sh")


def test_squad2_settings_by_path():
    """run_squad.sh reads AMOS's SQuAD 2.0 settings from the table, by path (standard library only)."""
    out = subprocess.run(
        [sys.executable, "-S", REPO / "stabletune_fairseq" / "recipes" / "defaults.py", "squad2"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert (
        out.split()
        == ["EPOCHS=3", "BSZ=16", "LR=2e-5", "WARMUP_RATIO=0.1", "VALIDATE_INTERVAL_UPDATES=half", "OPTIM=amos"]
        == table.SQUAD2.settings()
    )


def test_settings_record_ignores_quoting_and_order():
    command = [
        "bash",
        "/repo/run_scripts/run_xtreme.sh",
        "sts-b",
        "/m/model.pt",
        "/d/STS-B",
        "/out/seed1/plain",
        "SEED=1",
        "STAGE=0",
        "DICT_DIR=/a dir/with 'quotes'",
        "LR=1e-5",
        "--",
        "--log-interval",
        "1",
    ]
    quoted = [
        " ".join(shlex.quote(w) for w in command),  # two quotings of the same words
        " ".join('"' + w.replace('"', '\\"') + '"' if "'" in w else "'" + w + "'" for w in command),
    ]
    assert quoted[0] != quoted[1]
    records = [recorded_settings({"command": line}) for line in quoted]
    assert records[0] == records[1] == settings_record(command)
    reordered = command[:6] + [
        "LR=1e-5",
        "STAGE=0",
        "SEED=1",
        "DICT_DIR=/a dir/with 'quotes'",
        "PROGRESS=1",
        "--",
        "--log-interval",
        "1",
    ]
    assert settings_record(reordered) == settings_record(command)
    assert settings_record(command)["task"] == "STSB" and settings_record(command)["recipe"] == "run_xtreme.sh"
    other = [w if w != "LR=1e-5" else "LR=2e-5" for w in command]
    assert settings_record(other) != settings_record(command)
    assert settings_record(command[:-1] + ["2"]) != settings_record(command)  # fairseq's arguments count too


def test_row_lengths_are_the_preprocessing_defaults():
    """process.sh's MAX_LEN default comes from the one table (ROW_LENGTHS), for every task it prepares."""
    from stabletune_fairseq.cli.preprocess import MLM_TASKS, PARALLEL, QA_TASKS, SENTENCE_TASKS, TAGGING_TASKS
    from stabletune_fairseq.recipes.defaults import ROW_LENGTHS

    assert set(SENTENCE_TASKS + TAGGING_TASKS + QA_TASKS + MLM_TASKS + (PARALLEL,)) <= set(ROW_LENGTHS)
    assert (ROW_LENGTHS["xnli"].tokens, ROW_LENGTHS["panx"].tokens, ROW_LENGTHS["tydiqa"].tokens) == (256, 128, 384)
    assert all(row.source for row in ROW_LENGTHS.values())


def test_glue_token_cap_is_amos_and_a_row_always_fits():
    cap = table.GLUE_TOKEN_CAP
    assert [cap.tokens(bsz, 512) for bsz in (32, 16, 8, 4, 2)] == [4400, 2200, 1100, 550, 512]
    assert "run_glue.sh:34" in cap.source and ":118" in cap.source
    assert table.REGULARISERS.rdrop_scale == "fairseq"  # R-Drop's alpha on the fairseq criterion's scale, as before
