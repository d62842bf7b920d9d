#!/usr/bin/env bash
# Run the core tests (no kernel, no services) on each requested CPython version.
# A version that is not installed is reported and skipped; a failing one fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
failed=()
ran=0
for v in "$@"; do
  py=""
  if command -v pyenv >/dev/null 2>&1; then
    for cand in "$(pyenv root)"/versions/"$v".*/bin/python; do
      [ -x "$cand" ] && py="$cand"
    done
  fi
  [ -z "$py" ] && py="$(command -v "python$v" || true)"
  if [ -z "$py" ]; then
    echo "== Python $v: not found, skipped"
    continue
  fi
  venv=".venv-$v"
  echo "== Python $v: $py"
  if [ ! -f "$venv/.installed" ] || [ pyproject.toml -nt "$venv/.installed" ]; then
    "$py" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet -e '.[core-test]'
    touch "$venv/.installed"
  fi
  ran=$((ran + 1))
  if ! "$venv/bin/python" -m pytest -q -m "not kernel and not services" -p no:cacheprovider; then
    failed+=("$v")
  fi
done
if [ "$ran" -eq 0 ]; then
  echo "no Python of $* found"; exit 1
fi
if [ "${#failed[@]}" -gt 0 ]; then
  echo "core tests failed on: ${failed[*]}"; exit 1
fi
echo "core tests passed on $ran Python version(s)"
