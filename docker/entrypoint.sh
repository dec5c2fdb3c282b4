#!/bin/sh
# Entrypoint of the GPU image.
#   worker [prefect worker start options]  start a Prefect worker (default pool: $PREFECT_WORK_POOL)
#   retrain [python -m flows.retrain run options]  run the retraining flow once, now
#   serve [--cron CRON]                    serve the retraining flow on a schedule
#   pipeline [dvc repro options]           run the DVC pipeline in the current checkout
#   anything else                          executed as is (Prefect workers run `prefect flow-run execute`)
set -eu

case "${1:-help}" in
  worker)
    shift
    exec prefect worker start --pool "${PREFECT_WORK_POOL:-gpu-process}" "$@"
    ;;
  retrain)
    shift
    exec python -m flows.retrain run "$@"
    ;;
  serve)
    shift
    exec python -m flows.retrain serve "$@"
    ;;
  pipeline)
    shift
    # the image holds no .git: let DVC work without git in that case (`dvc repro`, not `exp run`)
    if ! git rev-parse --git-dir >/dev/null 2>&1; then
      dvc config --local core.no_scm true
    fi
    exec dvc repro "$@"
    ;;
  help|--help|-h)
    sed -n '2,7p' "$0"
    ;;
  *)
    exec "$@"
    ;;
esac
