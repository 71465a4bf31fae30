#!/usr/bin/env bash
# The GPU checks, prepared to run in under 8 minutes on one GPU (or on every GPU the machine has):
#
#   benchmarks/gpu.sh                 # results to docs/gan/throughput_cuda.{md,json} and runs/gpu/
#   GPUS=8 benchmarks/gpu.sh          # the short trainings data-parallel on 8 GPUs
#
# 1. The throughput table on CUDA (benchmarks/throughput.py: the classic loop, genhub eager with
#    bf16 autocast, channels-last, compile with CUDA graphs; FLOP/s against a matmul's).
# 2. A short training of each GAN recipe and of the VAE recipe (1 minute each, with --compile),
#    through `accelerate launch` when GPUS > 1, each ending in a model that loads.
# Needs the shared data (GENHUB_DATA_DIR, default ../shared/data) and a CUDA torch.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 PYTHONUNBUFFERED=1
GPUS="${GPUS:-1}"
OUT="${OUT:-runs/gpu}"
mkdir -p "$OUT"
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name(0))"

started=$SECONDS
timeout 300 python benchmarks/throughput.py --device cuda --repeats 3 --out docs/gan | tee "$OUT/throughput.log"
echo "throughput table: $((SECONDS - started)) s"

if [ "$GPUS" -gt 1 ]; then
  LAUNCH=(accelerate launch --multi_gpu --num_processes "$GPUS" --num_machines 1 --mixed_precision no --dynamo_backend no)
else
  LAUNCH=(python)
fi
for recipe in dcgan-mnist wgan-gp-mnist gan-anime-faces wgan-gp-svhn; do
  timeout 120 "${LAUNCH[@]}" train/gan.py --recipe "recipes/$recipe.toml" --out "$OUT/$recipe" --epochs 2 --threads 0 \
    --compile --eval-samples 1000 --no-progress 2>&1 | tail -3 || echo "$recipe stopped (status $?)"
done
timeout 120 "${LAUNCH[@]}" train/vae.py --recipe recipes/vae-binarized-mnist.toml --out "$OUT/vae-binarized-mnist" --time-budget 1 \
  --eval-limit 1000 --eval-samples 1000 --threads 0 --no-progress 2>&1 | tail -3 || echo "vae stopped (status $?)"
python - "$OUT" <<'EOF'
import sys
from pathlib import Path

from genhub import load_model

for folder in sorted(Path(sys.argv[1]).glob("*/model")):
    print(f"{folder}: {type(load_model(folder)).__name__} loads, samples {tuple(load_model(folder).sample(4, seed=0).shape)}")
EOF
echo "total: $((SECONDS - started)) s"
