#!/usr/bin/env bash
# Every figure of docs/performance.md, with one command:   bench/run_all.sh
# Each benchmark writes bench/results/<name>.json with its date, machine, load average and commit; the last step
# prints the summary table that docs/performance.md quotes (bench/summary.py --write updates the docs in place).
# Takes about 10 minutes on 2 cores; run it on a quiet machine (the load average is recorded either way).
set -euo pipefail
cd "$(dirname "$0")/.."

python bench/startup.py            # entrypoint.py -> first request, median of 7
python bench/e2e.py --profile      # recorded stages, 1k/2k/5k/10k prompts: wall time, peak RSS, where time goes
python bench/collection.py         # Action vs plain client on a real llama.cpp server (slow: real generation)
python bench/image_size.py         # requirements.txt in a fresh venv + base image's published size
if [ -f bench/features.py ]; then
    python bench/features.py       # feature extraction throughput, one core
fi
python bench/summary.py
