#!/usr/bin/env bash
# The GPU check of spikequant: kernel tests compiled on CUDA, Triton against torch at the
# study's shapes, and the study's training steps against SpikingJelly; writes one markdown
# report (--out, default gpu_check.md). Installs nothing: it uses the checkout's src/ with the
# torch + triton already on the machine. `--dry-run` does every step but the CUDA timing on a
# CPU. All options: bash benchmarks/gpu_check.sh --help
set -u
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
python="${PYTHON:-}"
if [ -z "$python" ]; then
    # the project's venv where there is one (a developer's machine), else the machine's python
    for candidate in "$root/.venv/bin/python" python3 python; do
        if command -v "$candidate" >/dev/null 2>&1; then python="$candidate"; break; fi
    done
fi
if [ -z "$python" ]; then
    echo "gpu_check: no python found; set PYTHON=/path/to/python" >&2
    exit 2
fi
echo "gpu_check: using $python ($("$python" --version 2>&1))" >&2
exec "$python" "$here/gpu_check.py" "$@"
