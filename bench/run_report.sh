#!/usr/bin/env bash
# Reproduce bench/README.md: export SmolLM2-135M-Instruct (the embedded default) and run the default
# l2v-bench into bench/results/ (results.jsonl, report.md, three PNGs).
#   bench/run_report.sh DATA_DIR [ARTIFACT_DIR] [extra l2v-bench flags...]
# DATA_DIR is the `data` folder written by `fetch_assets.sh DIR data` (shared/assets/fetch_assets.sh).
set -euo pipefail
DATA=${1:?usage: bench/run_report.sh DATA_DIR [ARTIFACT_DIR] [l2v-bench flags...]}
ART=${2:-artifacts/smollm2}
shift $(( $# >= 2 ? 2 : 1 ))
[ -f "$ART/l2v.json" ] || l2v-export --demo --out "$ART"
l2v-bench "$ART" --data-dir "$DATA" --out bench/results "$@"
