# Sourced by the run scripts (ROOT and PY set). recipe_plan <xtreme|mlm|distill-embeddings> <the script's arguments>
# runs the recipe's Python half (stabletune_fairseq/recipes/, defaults in recipes/defaults.py) once and sets CMD
# (the fairseq-train command), INFO (its info line) and what it hands back (RUN_DIR, NGPU, WORLD, DRY_RUN, PROGRESS,
# WANDB); on bad settings it has printed why and the script exits with its status (2). The fields come NUL-separated
# through a file: no quoting stands between Python's words and bash's.
RECIPE_PLAN=
recipe_plan() {
  local kind=$1 status=0 i; shift
  RECIPE_PLAN=$(mktemp "${TMPDIR:-/tmp}/recipe_plan.XXXXXX")
  PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" "$PY" -m stabletune_fairseq.cli.recipe "$kind" "$RECIPE_PLAN" "$ROOT" \
    "$PY" "$0" "$@" || status=$?
  if [ "$status" != 0 ]; then rm -f "$RECIPE_PLAN"; exit "$status"; fi
  local -a fields; mapfile -d '' -t fields < "$RECIPE_PLAN"; rm -f "$RECIPE_PLAN"; RECIPE_PLAN=
  CMD=()
  for i in "${!fields[@]}"; do
    case "${fields[$i]}" in
      --) CMD=("${fields[@]:i+1}"); break ;;
      RUN_DIR=*|NGPU=*|WORLD=*|DRY_RUN=*|PROGRESS=*|WANDB=*|INFO=*) declare -g "${fields[$i]}" ;;
    esac
  done
}
