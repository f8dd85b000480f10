#!/usr/bin/env bash
# A hyperparameter sweep over seeds: every combination of GRID's values x SEEDS x STAGES, each configuration in its
# own folder, <out_root>/<KEY=value,KEY=value>/, run by run_seeds.sh (its layout, skipping, resuming and failure
# handling), then stabletune-report over the whole grid (docs/reports.md#sweeps).
#
#   bash run_scripts/run_sweep.sh TASK <model.pt> <data_dir> <out_root> GRID="LR=1e-5,5e-6 BSZ=8,16" [SEEDS=1,2,3] [STAGES=0,1,2] [KEY=VALUE ...] [-- fairseq args]
#
# GRID: space-separated KEY=v1,v2,... of run_xtreme.sh's settings; the first key varies slowest, and the grid's order
#   breaks ties in the report. A key also given as a fixed KEY=VALUE, an unknown key, a repeated key or value, or an
#   empty value is refused before anything runs.
# MAX_RUNS=100: refuse a grid of more runs (configurations x seeds x stages). MAX_HOURS=: refuse when the estimate
#   is longer. ESTIMATE=auto|log|0: seconds per update from a finished run's train.log of the same shape, else
#   (auto) a few timed updates (PROBE_UPDATES=3) of each shape; log: logs only; 0: no estimate.
# DRY_RUN=0|1 (every command printed, nothing run) REPORT=1|0 KEEP_INTERVAL=0|1 (run_seeds.sh's)
# LAUNCHER= (one run after another, here) | local (submitit's local executor: PARALLEL= jobs at a time on this
#   machine) | slurm (a SLURM job array through submitit: SLURM_PARTITION= SLURM_TIME=1440 (minutes) SLURM_GPUS=1
#   SLURM_CPUS=10 SLURM_MEM_GB= SLURM_ACCOUNT= SLURM_PARALLEL= (jobs at a time)); a job is one configuration and
#   seed, every stage; a job that exits 75 (preempted) is submitted again, up to MAX_REQUEUE=3 times.
# Every other KEY=VALUE and anything after "--" go to every run (run_seeds.sh, then run_xtreme.sh).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY="$ROOT/.venv/bin/python"; [ -x "$PY" ] || PY=python3

if [ $# -lt 4 ]; then sed -n '2,/^set -uo/{/^set -uo/!p}' "$0" >&2; exit 2; fi
TASK=$1 MODEL=$2 DATA=$3 OUT_ROOT=$4; shift 4
# The plan (stabletune_fairseq/recipes/sweep.py): the grid checked, the runs counted and their time estimated; per
# configuration its folder name and its run_seeds.sh command, NUL-separated (no quoting between Python and bash).
PLAN=$(mktemp "${TMPDIR:-/tmp}/sweep_plan.XXXXXX")
trap 'rm -f "$PLAN"' EXIT
PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" "$PY" -m stabletune_fairseq.cli.recipe sweep "$PLAN" "$ROOT" "$PY" "$0" \
  "$TASK" "$MODEL" "$DATA" "$OUT_ROOT" "$@" || exit $?
mapfile -d '' -t FIELDS < "$PLAN"
DRY_RUN=0 REPORT=1 LAUNCHER=
for i in "${!FIELDS[@]}"; do
  case "${FIELDS[$i]}" in
    --) REST=("${FIELDS[@]:i+1}"); break ;;
    DRY_RUN=*|REPORT=*|LAUNCHER=*) declare "${FIELDS[$i]}" ;;
  esac
done

FAILED=()
if [ -n "$LAUNCHER" ]; then
  # Each configuration and seed a job of submitit (recipes/sweep_launch.py); it waits for all of them.
  PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" "$PY" -m stabletune_fairseq.cli.sweep_launch "$PLAN" "$OUT_ROOT"
  rc=$?
  [ $rc = 0 ] || FAILED+=("jobs (exit $rc)")
  [ $rc != 75 ] || { echo "run_sweep.sh: preempted; re-run the same command to resume" >&2; exit 75; }
else
  PREEMPTED= CHILD=
  trap 'PREEMPTED=TERM; [ -z "$CHILD" ] || kill -s TERM "$CHILD" 2>/dev/null' TERM
  trap 'PREEMPTED=USR1; [ -z "$CHILD" ] || kill -s USR1 "$CHILD" 2>/dev/null' USR1
  while [ ${#REST[@]} -gt 0 ]; do
    name=${REST[0]} count=${REST[1]}
    run=("${REST[@]:2:count}"); REST=("${REST[@]:2+count}")
    echo "== $name"
    [ "$DRY_RUN" != 1 ] || { printf '%q ' "${run[@]}"; echo; }
    "${run[@]}" &
    CHILD=$!
    while :; do
      rc=0; wait "$CHILD" || rc=$?
      kill -0 "$CHILD" 2>/dev/null || break  # else the wait was interrupted by a signal
    done
    CHILD=
    if [ $rc = 75 ] || { [ $rc != 0 ] && [ -n "$PREEMPTED" ]; }; then
      echo "run_sweep.sh: preempted during $name (exit $rc); re-run the same command to resume" >&2; exit 75
    fi
    [ $rc = 0 ] || { echo "run_sweep.sh: $name: FAILED (exit $rc)" >&2; FAILED+=("$name"); }
  done
fi

if [ "$REPORT" = 1 ]; then
  report=("$PY" -m stabletune_fairseq.cli.report "$OUT_ROOT" --out "$OUT_ROOT/report")
  if [ "$DRY_RUN" = 1 ]; then printf '%q ' "${report[@]}"; echo
  else "${report[@]}" > "$OUT_ROOT/report.out" 2>&1 && echo "report: $OUT_ROOT/report/sweep.md" \
    || { echo "run_sweep.sh: the report failed, see $OUT_ROOT/report.out" >&2; FAILED+=(report); }
  fi
fi
if [ ${#FAILED[@]} -gt 0 ]; then echo "run_sweep.sh: failed: ${FAILED[*]}" >&2; exit 1; fi
