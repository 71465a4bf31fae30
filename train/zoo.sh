#!/usr/bin/env bash
# Retrain the whole zoo from its recipes at full scale, one model after another, on the GPU
# when there is one: the full datasets (no --limit), longer schedules, and a wall-clock cap.
#
#   train/zoo.sh                     # every model, out to runs/zoo/<name>
#   MINUTES=8 train/zoo.sh dcgan-mnist wgan-gp-svhn
#
# Each line is a recipe plus the flags that scale it up; the card of each model records the
# command. The GAN runs stop at their epoch count; `timeout` caps every run at MINUTES (its
# checkpoint is kept: rerun the same line with --resume to continue exactly).
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES="${MINUTES:-8}"
OUT="${OUT:-runs/zoo}"
declare -A RUN=(
  [dcgan-mnist]="train/gan.py --recipe recipes/dcgan-mnist.toml --width 64 --epochs 100 --threads 0"
  [wgan-gp-mnist]="train/gan.py --recipe recipes/wgan-gp-mnist.toml --epochs 100 --threads 0"
  [gan-anime-faces]="train/gan.py --recipe recipes/gan-anime-faces.toml --limit 30000 --width 64 --epochs 30 --threads 0"
  [vaegan-anime-faces]="train/vaegan.py --recipe recipes/vaegan-anime-faces.toml --limit 30000 --width 64 --vae-epochs 20 --epochs 30 --generator-lr-scale 2 --threads 0"
  [wgan-gp-svhn]="train/gan.py --recipe recipes/wgan-gp-svhn.toml --holdout 0 --width 64 --epochs 30 --save-every 1 --threads 0"
  [vaegan-comic-faces]="train/vaegan.py --recipe recipes/vaegan-comic-faces.toml --width 64 --vae-epochs 60 --epochs 300 --threads 0"
  [gan-comic-faces]="train/gan.py --recipe recipes/gan-comic-faces.toml --width 64 --epochs 300 --threads 0"
  [vae-binarized-mnist]="train/vae.py --recipe recipes/vae-binarized-mnist.toml --time-budget $MINUTES --threads 0"
)
names=("$@")
[ ${#names[@]} -eq 0 ] && names=("${!RUN[@]}")
for name in "${names[@]}"; do
  [ -n "${RUN[$name]:-}" ] || { echo "unknown model $name; known: ${!RUN[*]}" >&2; exit 2; }
  echo "== $name: python ${RUN[$name]} --out $OUT/$name (at most $MINUTES min)"
  timeout --signal=INT "$((MINUTES * 60 + 60))" python ${RUN[$name]} --out "$OUT/$name" --no-progress || echo "$name stopped (status $?)"
done
