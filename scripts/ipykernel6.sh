#!/usr/bin/env bash
# The extension and kernel tests on ipykernel 6 + IPython 8, in their own venv
# (the main venv has ipykernel 7 + IPython 9). Python: $PYTHON or python3.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv-ipykernel6
py="${PYTHON:-python3}"
if [ ! -f "$venv/.installed" ] || [ pyproject.toml -nt "$venv/.installed" ]; then
  "$py" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet -e '.[test]' 'ipykernel>=6.29,<7' 'ipython>=8,<9'
  touch "$venv/.installed"
fi
"$venv/bin/python" -c "import ipykernel, IPython; print('ipykernel', ipykernel.__version__, '/ IPython', IPython.__version__)"
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider \
  tests/test_extension.py tests/test_kernel.py tests/test_notebooks.py tests/test_demo.py \
  tests/test_health.py tests/test_audit.py "$@"
