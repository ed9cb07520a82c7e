#!/usr/bin/env bash
# Makes .venv: torch and torchvision from one build, then this package editable with the clip and test
# extras. Fails if installing the package would change torch. Safe to run again: it reuses .venv.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

TORCH=2.14.1
TORCHVISION=0.29.1
# 3.11: the torch wheels above lie on this project's machines for that version only.
PY=${PYTHON:-$(command -v python3.11 || command -v python3)}
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_PROGRESS_BAR=off

step() { echo "=== $* ($(date +%T))"; }

if [ ! -x .venv/bin/python ]; then
  step "create .venv with $PY ($("$PY" --version))"
  "$PY" -m venv .venv
fi
PIP=(.venv/bin/python -m pip)

step "install torch $TORCH, torchvision $TORCHVISION"
"${PIP[@]}" install "torch==$TORCH" "torchvision==$TORCHVISION"
torch_before=$(.venv/bin/python -c 'import torch; print(torch.__version__)')

# Pinned so that a dependency asking for another torch fails the install instead of swapping the build.
constraints=$(mktemp)
trap 'rm -f "$constraints"' EXIT
printf 'torch==%s\ntorchvision==%s\n' "$TORCH" "$TORCHVISION" > "$constraints"
step "install nnunetv2-tevia with the clip and test extras"
"${PIP[@]}" install -c "$constraints" -e ".[clip,test]"
torch_after=$(.venv/bin/python -c 'import torch; print(torch.__version__)')
if [ "$torch_before" != "$torch_after" ]; then
  echo "ERROR: installing nnunetv2-tevia changed torch from $torch_before to $torch_after" >&2
  exit 1
fi
step "done: .venv has torch $torch_after and nnunetv2-tevia"
