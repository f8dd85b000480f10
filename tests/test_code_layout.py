"""The house rules a change must keep (docs/architecture.md): imports flow one way (import-linter's contracts in
pyproject.toml), the tree is formatted and linted by ruff, and importing the package registers our parts and
changes nothing else in fairseq."""

import subprocess
import sys

from conftest import BIN, REPO, run


def test_imports_flow_one_way():
    result = run([BIN / "lint-imports", "--no-cache"], check=False)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_ruff_lint_and_format_are_clean():
    lint = run([BIN / "ruff", "check", "--no-cache", "."], check=False)
    assert lint.returncode == 0, lint.stdout[-4000:]
    formatting = run([BIN / "ruff", "format", "--no-cache", "--check", "."], check=False)
    assert formatting.returncode == 0, formatting.stdout[-4000:]


def test_importing_the_package_registers_and_changes_nothing_else():
    code = """
import fairseq.checkpoint_utils as cu, fairseq.distributed.utils as du, fairseq.file_io as fio
import fairseq.tasks, fairseq.criterions, fairseq.models
before = (du.call_main, cu.save_checkpoint, fio.PathManager.copy)
import stabletune_fairseq
after = (du.call_main, cu.save_checkpoint, fio.PathManager.copy)
assert before == after, "importing the plugin changed fairseq's functions"
assert "xtreme_sentence" in fairseq.tasks.TASK_REGISTRY
assert "stability_consistency" in fairseq.criterions.CRITERION_REGISTRY
assert "stabletune_xlmr_e5_small" in fairseq.models.ARCH_MODEL_REGISTRY
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]
