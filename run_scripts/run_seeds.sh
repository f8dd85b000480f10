#!/usr/bin/env bash
# One task over several seeds and stages, then the report: plain fine-tuning (stage 0), xTune stage 1,
# and stage 2 from the same seed's stage 1, plain fine-tuning with R-Drop (rdrop) or R3F (r3f), each with
# run_xtreme.sh; every selection rule's checkpoint evaluated; stabletune-report over all of them.
#
#   bash run_scripts/run_seeds.sh TASK <model.pt> <data_dir> <out_root> [SEEDS=1,2,3] [STAGES=0,1,2] [KEY=VALUE ...] [-- fairseq args]
#
# STAGES: a comma-separated subset of 0 (plain), 1, 2 (xTune), rdrop, r3f (run_xtreme.sh STAGE=0 REG=rdrop|r3f), kd
# (run_xtreme.sh STAGE=0 DISTILL=<teacher.pt>: distillation, docs/distillation.md; DISTILL= is then required);
# default 0,1,2, for a GLUE task folder 0,rdrop,r3f (xTune's stages are refused there). REG= itself is refused: a
# regulariser is a stage of its own, compared with plain fine-tuning of the same seed. RDROP_ALPHA= goes to the
# rdrop runs only, R3F_LAMBDA=, R3F_EPS=, R3F_NOISE= to the r3f runs only, DISTILL=, KD_T=, KD_ALPHA=, PKD_MU=,
# PKD_LAYERS=, CON_WEIGHT=, CON_T=, BANK=, LCON_WEIGHT=, LCON_T=, LCON_NEG=, LCON_LAYERS=, LCON_ANY_ROW=, CON_STEPS=,
# SCL_LAMBDA=, SCL_T= to the kd runs only.
# Layout: <out_root>/seed<N>/{plain, xtune (stage 1), xtune/stage2, rdrop, r3f, kd} (run_xtreme.sh save dirs, with
# eval/<rule>-<split>/ inside), seed<N>/logs/<stage>.log (everything the run printed), seed<N>/status/<stage>.json
# (exit status, wall time, the command and its settings; <stage>: plain, stage1, stage2, rdrop, r3f), <out_root>/report/
# (report.md, report.json, PNGs).
#
# Re-running the same command skips what is finished (same settings) and resumes what is not (run_xtreme.sh
# resumes from checkpoint_last.pt). A run that fails is reported and the others go on (a failed stage 1
# skips that seed's stage 2); the exit status is 1 when any run failed.
# Settings: SEEDS=1,2,3 STAGES= DRY_RUN=0|1 (print every command, run nothing) REPORT=1|0
# KEEP_INTERVAL=0|1 (0: a finished run's interval checkpoints, kept for crash recovery, are removed); every other
# KEY=VALUE (NPROC=, MAX_UPDATE=, LR=, SETTING=, DICT_DIR=, ...) and anything after "--" go to run_xtreme.sh;
# TENSORBOARD=<dir> as TENSORBOARD=<dir>/seed<N>/<plain|stage1|stage2|rdrop|r3f>, one folder per run.
#
#   bash run_scripts/run_seeds.sh COMPRESS <model.pt> <parallel data_dir> <out_root> TEACHER=<teacher> STS_DATA=<folder> TATOEBA_DATA=<folder> [SEEDS=1,2,3] [STAGES=1,2,3,4] [KEY=VALUE ...] [-- fairseq args]
#
# COMPRESS: the multi-stage framework's compressed student (run_compress_embeddings.sh, docs/compressed-students.md)
# once per seed into <out_root>/seed<N>/compress; STAGES= its stages (default 1,2,3,4). Then each stage's
# checkpoint_best is scored by stabletune-embed-eval on STS_DATA= and/or TATOEBA_DATA= (at least one; the scores do
# not choose checkpoints) into seed<N>/compress/eval/stage<k>-<sts|tatoeba>/, with the recipe's prefix (PREFIX=, else
# its default for TEACHER); the report: compression.md, each stage mean ± sd over seeds and minus stage 1, paired by
# seed. Every other KEY=VALUE goes to run_compress_embeddings.sh. A stopped run resumes when the command is re-run
# (finished stages are skipped, the interrupted one resumes from its checkpoint_last.pt).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY="$ROOT/.venv/bin/python"; [ -x "$PY" ] || PY=python3

if [ $# -lt 4 ]; then sed -n '2,/^set -uo/{/^set -uo/!p}' "$0" >&2; exit 2; fi
TASK=$1 MODEL=$2 DATA=$3 OUT_ROOT=$4; shift 4
SEEDS=1,2,3 STAGES= DRY_RUN=0 REPORT=1 KEEP_INTERVAL=0 TENSORBOARD= STS_DATA= TATOEBA_DATA= TEACHER= PREFIX=__default__
PASS=() RDROP=() R3F=() KD=()  # RDROP/R3F/KD: the regularisers' and distillation's settings, for their own runs only
while [ $# -gt 0 ]; do
  case "$1" in
    SEEDS=*|STAGES=*|DRY_RUN=*|REPORT=*|KEEP_INTERVAL=*|TENSORBOARD=*|STS_DATA=*|TATOEBA_DATA=*) declare "$1" ;;
    TEACHER=*|PREFIX=*) declare "$1"; PASS+=("$1") ;;  # the compression recipe's; read here for the scoring prefix
    SEED=*|STAGE=*) echo "run_seeds.sh: '$1': set SEEDS= and STAGES= instead (the runner sets SEED and STAGE per run)" >&2; exit 2 ;;
    REG=*) echo "run_seeds.sh: '$1': add rdrop or r3f to STAGES= instead (e.g. STAGES=0,rdrop: each regulariser is a run of its own, compared with plain fine-tuning)" >&2; exit 2 ;;
    RDROP_ALPHA=*) RDROP+=("$1") ;;
    R3F_LAMBDA=*|R3F_EPS=*|R3F_NOISE=*) R3F+=("$1") ;;
    DISTILL=*|KD_T=*|KD_ALPHA=*|PKD_MU=*|PKD_LAYERS=*|CON_WEIGHT=*|CON_T=*|BANK=*|LCON_*=*|CON_STEPS=*|SCL_*=*) KD+=("$1") ;;
    --) PASS+=("$@"); break ;;
    *=*) PASS+=("$1") ;;
    *) echo "run_seeds.sh: unexpected argument '$1' (settings are KEY=VALUE; see the header of $0)" >&2; exit 2 ;;
  esac
  shift
done
[[ "$SEEDS" =~ ^[0-9]+(,[0-9]+)*$ ]] || { echo "run_seeds.sh: SEEDS must be comma-separated integers (got '$SEEDS')" >&2; exit 2; }
if [ "$TASK" = COMPRESS ]; then
  [ -n "$STAGES" ] || STAGES=1,2,3,4
  [[ "$STAGES" =~ ^[1-4](,[1-4])*$ ]] || { echo "run_seeds.sh: COMPRESS: STAGES must be a comma-separated subset of 1,2,3,4 (got '$STAGES')" >&2; exit 2; }
  [ -n "$TEACHER" ] || { echo "run_seeds.sh: COMPRESS: TEACHER=<sentence encoder> is required (run_compress_embeddings.sh's teacher)" >&2; exit 2; }
  [ -n "$STS_DATA$TATOEBA_DATA" ] || { echo "run_seeds.sh: COMPRESS: STS_DATA=<folder> and/or TATOEBA_DATA=<folder> are needed: each stage is scored on them" >&2; exit 2; }
  for folder in "$STS_DATA" "$TATOEBA_DATA"; do
    [ -z "$folder" ] || [ -d "$folder" ] || { echo "run_seeds.sh: COMPRESS: '$folder' is not a folder" >&2; exit 2; }
  done
  if [ "$PREFIX" = __default__ ]; then  # the recipe's own choice for this teacher (run_compress_embeddings.sh)
    PREFIX=$("$PY" -c 'import sys; from stabletune_fairseq.recipes.sentence_distillation import default_prefix
print(default_prefix(sys.argv[1]))' "$TEACHER") || exit 2
  fi
fi
STAGE_RE='(0|1|2|rdrop|r3f|kd)'
[ "$TASK" = COMPRESS ] || [ -z "$STAGES" ] || [[ "$STAGES" =~ ^$STAGE_RE(,$STAGE_RE)*$ ]] || { echo "run_seeds.sh: STAGES must be a comma-separated subset of 0,1,2,rdrop,r3f,kd (got '$STAGES')" >&2; exit 2; }
if [[ ",$STAGES," == *,kd,* ]] && [[ " ${KD[*]} " != *" DISTILL="* ]]; then
  echo "run_seeds.sh: STAGES=$STAGES: the kd runs need DISTILL=<teacher.pt> (a fine-tuned checkpoint of this task folder)" >&2; exit 2
fi
[ -f "$DATA/metadata.json" ] || { echo "run_seeds.sh: '$DATA' has no metadata.json (run preprocess/xtreme/process.sh, with <folder> parallel for COMPRESS, or preprocess/glue/process.sh first)" >&2; exit 2; }
KIND=$("$PY" -c "import json, sys; print(json.load(open(sys.argv[1])).get('kind', ''))" "$DATA/metadata.json") || exit 2
if [ "$TASK" = COMPRESS ] && [ "$KIND" != parallel_sentences ]; then
  echo "run_seeds.sh: COMPRESS: '$DATA' holds '$KIND' data, not parallel sentences (process.sh <folder> parallel)" >&2; exit 2
fi
if [ "$TASK" != COMPRESS ] && [ "$KIND" = parallel_sentences ]; then
  echo "run_seeds.sh: '$DATA' holds parallel sentences: use TASK=COMPRESS (run_compress_embeddings.sh)" >&2; exit 2
fi
if [ "$KIND" = glue ]; then
  [ -n "$STAGES" ] || STAGES=0,rdrop,r3f
  [[ ! ",$STAGES," =~ ,[12], ]] || { echo "run_seeds.sh: STAGES=$STAGES: xTune's stages 1 and 2 are for XTREME's cross-lingual tasks; for GLUE choose from 0,rdrop,r3f" >&2; exit 2; }
fi
[ -n "$STAGES" ] || STAGES=0,1,2

declare -A NAME=([0]=plain [1]=stage1 [2]=stage2 [rdrop]=rdrop [r3f]=r3f [kd]=kd [compress]=compress)
declare -A SUBDIR=([0]=plain [1]=xtune [2]=xtune/stage2 [rdrop]=rdrop [r3f]=r3f [kd]=kd [compress]=compress)  # stage 2 trains in its stage 1's save dir
RUNS=$STAGES; [ "$TASK" != COMPRESS ] || RUNS=compress  # COMPRESS: one recipe run a seed, its STAGES inside
FAILED=()

# run <label> <command...>: prints it (DRY_RUN), or runs it with its output in the seed's log.
# Preemption (SIGTERM/SIGUSR1, see run_xtreme.sh): passed on to the run in progress, which saves and exits with 75;
# then this script stops too, with 75, and re-running the same command resumes that run.
PREEMPTED= CHILD=
trap 'PREEMPTED=TERM; [ -z "$CHILD" ] || kill -s TERM "$CHILD" 2>/dev/null' TERM
trap 'PREEMPTED=USR1; [ -z "$CHILD" ] || kill -s USR1 "$CHILD" 2>/dev/null' USR1
run_logged() {
  local log=$1 rc; shift
  if [ "$DRY_RUN" = 1 ]; then printf '%q ' "$@"; echo; return 0; fi
  mkdir -p "$(dirname "$log")"
  "$@" >> "$log" 2>&1 &
  CHILD=$!
  while :; do
    rc=0; wait "$CHILD" || rc=$?
    kill -0 "$CHILD" 2>/dev/null || break  # else the wait was interrupted by a signal
  done
  CHILD=
  return $rc
}
stop_if_preempted() {  # rc what
  [ "$1" = 75 ] || [ -n "$PREEMPTED" ] || return 0
  echo "run_seeds.sh: preempted during $2 (exit $1); re-run the same command to resume" >&2
  exit 75
}
# A run's status file keeps its command and the record of its settings (stabletune_fairseq/recipes/run_record.py, run
# by path: standard library only): a re-run compares settings, not how the command is quoted.
RECORD=$ROOT/stabletune_fairseq/recipes/run_record.py
write_status() {  # file status exit wall command -- train command
  "$PY" "$RECORD" write "$@"
}
status_of() { "$PY" "$RECORD" status "$1"; }
score_stages() {  # <compress dir>: each stage's checkpoint_best through stabletune-embed-eval, on STS and Tatoeba
  local stage task folder
  for stage in ${STAGES//,/ }; do
    # stage 1 does not run with ASSISTANT= (the recipe starts from that model): nothing of it to score
    [ -e "$1/stage$stage/done" ] || { echo "stage $stage: not run (ASSISTANT= given), not scored"; continue; }
    for task in sts tatoeba; do
      folder=$STS_DATA; [ "$task" = sts ] || folder=$TATOEBA_DATA
      [ -n "$folder" ] || continue
      "$PY" -m stabletune_fairseq.cli.embed_eval --checkpoint "$1/stage$stage/run/checkpoint_best.pt" --task "$task" \
        --data "$folder" --prefix "$PREFIX" --out "$1/eval/stage$stage-$task" || return
    done
  done
}

for seed in ${SEEDS//,/ }; do
  SEED_DIR=$OUT_ROOT/seed$seed
  for stage in ${RUNS//,/ }; do
    name=${NAME[$stage]}; save=$SEED_DIR/${SUBDIR[$stage]%/stage2}
    run_dir=$SEED_DIR/${SUBDIR[$stage]}; log=$SEED_DIR/logs/$name.log; status=$SEED_DIR/status/$name.json
    tb=(); [ -z "$TENSORBOARD" ] || tb=(TENSORBOARD="$TENSORBOARD/seed$seed/$name")
    case "$stage" in
      rdrop) how=(STAGE=0 REG=rdrop "${RDROP[@]}") ;;
      r3f) how=(STAGE=0 REG=r3f "${R3F[@]}") ;;
      kd) how=(STAGE=0 "${KD[@]}") ;;
      *) how=(STAGE="$stage") ;;
    esac
    train=(bash "$ROOT/run_scripts/run_xtreme.sh" "$TASK" "$MODEL" "$DATA" "$save" SEED="$seed" "${how[@]}" "${tb[@]}" "${PASS[@]}")
    evaluate=("$PY" -m stabletune_fairseq.cli.evaluate_rules "$run_dir" --data "$DATA")
    if [ "$stage" = compress ]; then
      train=(bash "$ROOT/run_scripts/run_compress_embeddings.sh" "$MODEL" "$DATA" "$run_dir" SEED="$seed" STAGES="$STAGES" "${PASS[@]}")
      evaluate=(score_stages "$run_dir")
    fi
    command=$(printf '%q ' "${train[@]}")
    if [ "$stage" = 2 ] && [[ ",$STAGES," == *,1,* ]] && [[ " ${FAILED[*]} " == *" seed$seed/stage1 "* ]]; then
      echo "seed $seed $name: skipped (its stage 1 failed)"; FAILED+=("seed$seed/$name"); continue
    fi
    previous=$(status_of "$status" || true)
    if [ -n "$previous" ] && [ "$DRY_RUN" != 1 ] && ! "$PY" "$RECORD" same "$status" -- "${train[@]}"; then
      echo "seed $seed $name: FAILED: run before with other settings (see $status); use another out_root or remove $run_dir" >&2
      FAILED+=("seed$seed/$name"); continue
    fi
    case "$previous" in
      done) echo "seed $seed $name: finished before, skipped"; continue ;;
      trained) echo "seed $seed $name: trained before; evaluating" ;;
      *) [ -z "$previous" ] || [ "$DRY_RUN" = 1 ] || echo "seed $seed $name: resuming (it had $previous)"
         t0=$SECONDS
         run_logged "$log" "${train[@]}"; rc=$?
         if [ $rc = 75 ] || { [ $rc != 0 ] && [ -n "$PREEMPTED" ]; }; then
           write_status "$status" preempted $rc $((SECONDS - t0)) "$command" -- "${train[@]}"
           stop_if_preempted $rc "seed $seed $name"
         fi
         if [ $rc -ne 0 ]; then
           write_status "$status" failed $rc $((SECONDS - t0)) "$command" -- "${train[@]}"
           echo "seed $seed $name: FAILED (exit $rc) after $((SECONDS - t0)) s; the end of $log:" >&2
           tail -n 3 "$log" | cut -c1-300 >&2
           FAILED+=("seed$seed/$name"); continue
         fi
         [ "$DRY_RUN" = 1 ] || write_status "$status" trained 0 $((SECONDS - t0)) "$command" -- "${train[@]}"
         [ "$DRY_RUN" = 1 ] || echo "seed $seed $name: trained in $((SECONDS - t0)) s ($run_dir)"
         stop_if_preempted $rc "seed $seed $name" ;;
    esac
    t0=$SECONDS
    run_logged "$log" "${evaluate[@]}"; rc=$?
    stop_if_preempted $rc "the evaluation of seed $seed $name"
    [ "$DRY_RUN" != 1 ] || continue
    wall=$(( $("$PY" -c "import json, sys; print(json.load(open(sys.argv[1]))['wall_s'])" "$status") + SECONDS - t0 ))
    if [ $rc -ne 0 ]; then
      echo "seed $seed $name: evaluation FAILED (exit $rc); the end of $log:" >&2; tail -n 3 "$log" | cut -c1-300 >&2
      FAILED+=("seed$seed/$name"); continue  # stays "trained": a re-run evaluates again
    fi
    write_status "$status" done 0 "$wall" "$command" -- "${train[@]}"
    # Interval checkpoints exist for crash recovery only; the selection rules' files stay.
    [ "$KEEP_INTERVAL" = 1 ] || rm -f "$run_dir"/checkpoint_[0-9]*_[0-9]*.pt "$run_dir"/stage[1-4]/run/checkpoint_[0-9]*_[0-9]*.pt
    echo "seed $seed $name: evaluated in $((SECONDS - t0)) s"
  done
done

if [ "$REPORT" = 1 ]; then
  if [ "$DRY_RUN" = 1 ]; then printf '%q ' "$PY" -m stabletune_fairseq.cli.report "$OUT_ROOT" --out "$OUT_ROOT/report"; echo
  else "$PY" -m stabletune_fairseq.cli.report "$OUT_ROOT" --out "$OUT_ROOT/report" > "$OUT_ROOT/report.out" 2>&1 \
    && echo "report: $OUT_ROOT/report/report.md" || { echo "run_seeds.sh: the report failed, see $OUT_ROOT/report.out" >&2; FAILED+=(report); }
  fi
fi
if [ ${#FAILED[@]} -gt 0 ]; then echo "run_seeds.sh: failed: ${FAILED[*]}" >&2; exit 1; fi
