"""Evaluate a saved genhub model against real held-out data and record it in the model card.

    python train/evaluate.py runs/vae --dataset binarized-mnist
    python train/evaluate.py runs/dcgan-mnist --dataset mnist --samples 10000
    python train/evaluate.py you/dcgan-mnist --dataset mnist --out runs/eval   # a Hub id

Prints a table, writes eval.json, and updates the card (README.md): the `model-index`
eval results in its metadata and the "Evaluation" section of its body. It merges: the
metrics it computes replace the card's values for them, every other result already in the
card (e.g. the NLL train/vae.py wrote at the end of training) stays. A local folder is
updated in place; for a Hub id the updated card and JSON go to --out (upload them with
`hf upload`). Metrics: see genhub/evaluation.py.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
from pathlib import Path

from genhub.data import DatasetError
from genhub.evaluation import evaluate_model, record_evaluation, write_json
from genhub.models.hub import ModelLoadError, load_model
from genhub.runtime import pick_device
from genhub.training.cli import check_output_folder, run_cli


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a saved genhub model folder or a Hub id")
    parser.add_argument("--dataset", required=True, help="the real data to compare against: a genhub dataset name or a local folder")
    parser.add_argument("--split", default="auto", help="reference split (auto: validation, else test, else train)")
    parser.add_argument("--samples", type=int, default=10000, help="generated and reference images compared")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--nll-k", type=int, default=1000, help="importance samples for the NLL of VAEs (0 skips it)")
    parser.add_argument("--nll-images", type=int, default=1000, help="held-out images for the NLL")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    parser.add_argument("--out", default=None, help="where eval.json and the card go (default: the model folder itself)")
    parser.add_argument("--no-card", action="store_true", help="write eval.json only, leave the card alone")
    parser.add_argument(
        "--other-data",
        action="store_true",
        help="evaluate against data of another kind (other size, channels or family), converted; the card says so",
    )
    parser.add_argument(
        "--truncation",
        type=float,
        default=None,
        help="draw the samples with the truncation trick, |z| <= T in every coordinate; needs --out, and writes eval.json "
        "there only: the card keeps the metrics of the untruncated prior",
    )
    args = parser.parse_args(argv)
    if args.truncation is not None:
        if not (args.truncation > 0 and math.isfinite(args.truncation)):
            parser.error(f"--truncation must be a positive number, got {args.truncation}")
        if not args.out:
            parser.error("--truncation needs --out: its metrics are not the model's own, so they do not go into its card")
        args.no_card = True
    if args.samples < 2 or args.nll_k < 0 or args.nll_images < 1:
        parser.error("--samples must be at least 2, --nll-k at least 0 and --nll-images at least 1")
    if args.out:
        check_output_folder(parser, args.out)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        model = load_model(args.model).to(pick_device(args.device))
    except ModelLoadError as error:
        raise SystemExit(f"error: {error}") from error
    try:
        evaluation = evaluate_model(
            model, args.dataset, num_samples=args.samples, seed=args.seed, split=args.split, nll_k=args.nll_k, nll_images=args.nll_images,
            allow_other_data=args.other_data, truncation=args.truncation,
        )  # fmt: skip
    except DatasetError as error:
        raise SystemExit(f"error: {error}") from error
    except ValueError as error:  # data of another kind, or a model whose image shape the dataset cannot be resized to
        raise SystemExit(f"error: {error}") from error

    print(f"{type(model).__name__} from {args.model} vs {evaluation.dataset} ({evaluation.split})")
    print(evaluation.table())
    print(evaluation.note())

    local = os.path.isdir(args.model)
    out = Path(args.out) if args.out else Path(args.model) if local else Path("runs") / "eval" / args.model.replace("/", "--")
    out.mkdir(parents=True, exist_ok=True)
    if not local and not (out / "README.md").exists():
        _copy_hub_card(args.model, out)
    if local and out != Path(args.model) and (Path(args.model) / "README.md").exists():
        shutil.copy(Path(args.model) / "README.md", out / "README.md")
    if args.no_card:
        write_json(out / "eval.json", evaluation)
        print(f"wrote {out / 'eval.json'}")
    else:
        card = record_evaluation(out, evaluation, model_name=Path(args.model).name)
        print(f"wrote {out / 'eval.json'} and updated {card}")
    return evaluation.to_dict()


def _copy_hub_card(repo_id: str, out: Path) -> None:
    """The model's card from the Hub cache, so its update keeps the original text."""
    from huggingface_hub import hf_hub_download

    try:
        shutil.copy(hf_hub_download(repo_id, "README.md"), out / "README.md")
    except Exception as error:  # no card on the Hub or not cached offline: start a fresh one
        print(f"note: no cached card for {repo_id} ({type(error).__name__}); writing a new one", file=sys.stderr)


if __name__ == "__main__":
    run_cli(main)
