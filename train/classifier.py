"""Train the MNIST evaluator CNN that genhub's sample metrics use (genhub.models.classifier).

    python train/classifier.py                                  # -> weights/evaluators/mnist-cnn
    python train/classifier.py --dataset ../shared/data/mnist --epochs 3

Trains on the train split with small random rotations/shifts, reports accuracy on the
test split, and saves the model with a card stating that accuracy.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from genhub.assets import CHECKOUT
from genhub.data import load_images
from genhub.models.classifier import DigitClassifier
from genhub.runtime import environment_summary, pick_device, portable, seed_everything
from genhub.training.base import save_json
from genhub.training.classifier import accuracy, train_steps
from genhub.training.cli import check_output_folder, check_positive, run_cli


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="mnist", help="mnist (Hub or GENHUB_DATA_DIR) or a local folder with train/test splits")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch (1 is fastest on a busy small machine)")
    parser.add_argument("--out", default="weights/evaluators/mnist-cnn")
    args = parser.parse_args(argv)
    check_positive(parser, args, "epochs", "batch_size", "lr", "threads")
    check_output_folder(parser, args.out)

    if args.threads:
        torch.set_num_threads(args.threads)
    seed_everything(args.seed)
    device = pick_device(args.device)
    train = load_images(args.dataset, split="train", image_size=28, channels=1)
    test = load_images(args.dataset, split="test", image_size=28, channels=1)
    if train.labels is None or test.labels is None:
        raise ValueError(f"{args.dataset!r} has no labels; the evaluator needs a labelled digit dataset (train and test splits)")

    model = DigitClassifier().to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    steps = args.epochs * -(-len(train) // args.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=steps)
    generator = torch.Generator().manual_seed(args.seed)
    started = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        loss = train_steps(model, optimizer, train.images, train.labels, args.batch_size, generator, scheduler)
        print(
            f"epoch {epoch}/{args.epochs}  loss {loss:.4f}  test accuracy {accuracy(model, test.images, test.labels):.4f}  "
            f"({time.perf_counter() - started:.0f} s)",
            flush=True,
        )
    seconds = time.perf_counter() - started
    test_accuracy = accuracy(model, test.images, test.labels)
    train_accuracy = accuracy(model, train.images[:10000], train.labels[:10000])
    print(f"final test accuracy {test_accuracy:.4f} on {len(test):,} images")

    out = Path(args.out)
    card = {
        "dataset": "MNIST",
        "dataset_id": "ylecun/mnist",
        "num_train": len(train),
        "test_accuracy": f"{test_accuracy:.4f}",
        "train_accuracy": f"{train_accuracy:.4f}",
        "training": {
            "epochs": args.epochs,
            "batch size": args.batch_size,
            "optimizer": f"AdamW, one-cycle lr up to {args.lr}, weight decay 1e-4",
            "loss": "cross-entropy, label smoothing 0.05",
            "augmentation": "random rotation +-10 deg, shift +-10%, scale +-10%",
            "seed": args.seed,
            "hardware": environment_summary(device),
            "wall time": f"{seconds:.0f} s",
        },
        "eval_results": [_accuracy_result(test_accuracy)],
    }
    model.cpu().save_pretrained(out, model_card_kwargs=card)
    save_json(
        out / "metrics.json",
        {
            "test_accuracy": test_accuracy,
            "train_accuracy_first_10k": train_accuracy,
            "epochs": args.epochs,
            "seconds": round(seconds, 1),
            "hardware": environment_summary(device),
        },
    )
    print(f"saved classifier, config and card to {portable(str(out.resolve()), CHECKOUT)}")


def _accuracy_result(value: float):
    from huggingface_hub import EvalResult

    return EvalResult(
        task_type="image-classification",
        dataset_type="ylecun/mnist",
        dataset_name="MNIST",
        dataset_split="test",
        metric_type="accuracy",
        metric_name="Test accuracy",
        metric_value=round(value, 4),
    )


if __name__ == "__main__":
    run_cli(main)
