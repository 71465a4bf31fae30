"""The Space under load: K concurrent gradio_client clients for T seconds against `python app.py`.

    python benchmarks/app_load.py                         # 32 clients, 60 s, the bundled models
    python benchmarks/app_load.py --clients 8 --seconds 20

The server runs on 127.0.0.1 only (genhub.space.serve.running_app). Each client thread loops
over the Space's public endpoints (sample, slider redraw, interpolate, explore, and
reconstruct on a VAE) on a random bundled model until the time is up: the loop is bounded in
time and each client in requests (--max-requests). Reported: requests, errors, latency
p50/p95/max, the server's resident memory before and after, and the concurrency limit app.py
runs with (GENHUB_CONCURRENCY, default 2: one request per CPU core; more queue). Figures go to
docs/app/load.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import threading
import time
from pathlib import Path

from genhub.space.serve import digit_drawing_file, running_app

REPO = Path(__file__).resolve().parent.parent


def client_loop(url: str, models: list[tuple[str, bool]], deadline: float, max_requests: int, seed: int, out: list, errors: list):
    from gradio_client import Client, handle_file

    rng = random.Random(seed)
    client = Client(url, verbose=False)
    sketch = digit_drawing_file()
    for _ in range(max_requests):
        if time.perf_counter() >= deadline:
            return
        key, vae = rng.choice(models)
        action = rng.choice(["sample", "redraw", "interpolate", "explore"] + (["reconstruct"] if vae else []))
        arguments = {
            "sample": ((key, rng.randrange(1000), 16), "/sample"),
            "redraw": ((key, rng.randrange(1000), *[rng.uniform(-2, 2) for _ in range(8)]), "/redraw"),
            "interpolate": ((key, rng.randrange(1000), rng.randrange(1000), 8), "/interpolate_seeds"),
            "explore": ((key, rng.randrange(1000), 0, 8), "/explore"),
            "reconstruct": ((key, {"background": None, "layers": [], "composite": handle_file(sketch)}), "/reconstruct"),
        }[action]
        started = time.perf_counter()
        try:
            client.predict(*arguments[0], api_name=arguments[1])
            out.append((action, (time.perf_counter() - started) * 1000))
        except Exception as error:  # noqa: BLE001 - every failure is counted, whatever its type
            errors.append(f"{action}: {type(error).__name__}: {str(error)[:200]}")


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))] if values else float("nan")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--max-requests", type=int, default=2000, help="per client, whatever the time")
    parser.add_argument("--weights", default=str(REPO / "weights"))
    parser.add_argument("--out", default=str(REPO / "docs" / "app"))
    args = parser.parse_args(argv)
    if not 1 <= args.clients <= 256 or not 0 < args.seconds <= 600:
        parser.error("--clients must be 1..256 and --seconds in (0, 600]")

    from genhub.space import app_logic as logic

    registry = logic.ModelRegistry.from_environment(args.weights, hub_ids="")
    models = [(key, logic.is_vae(model)) for key, model in registry.models.items()]
    concurrency = int(os.environ.get("GENHUB_CONCURRENCY", "2"))
    with running_app(args.weights) as app:
        rss_before = app.rss_bytes()
        latencies, errors = [], []
        deadline = time.perf_counter() + args.seconds
        threads = [threading.Thread(target=client_loop, args=(app.url, models, deadline, args.max_requests, i, latencies, errors))
                   for i in range(args.clients)]  # fmt: skip
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=args.seconds + 120)
        wall = time.perf_counter() - started
        rss_after = app.rss_bytes()
        alive = app.process.poll() is None
    times = [ms for _, ms in latencies]
    report = {
        "clients": args.clients, "seconds": args.seconds, "wall_seconds": round(wall, 1), "requests": len(latencies) + len(errors),
        "errors": len(errors), "error_examples": errors[:5], "server_alive_at_the_end": alive,
        "latency_ms": {"p50": round(statistics.median(times), 1) if times else None, "p95": round(percentile(times, 0.95), 1),
                       "max": round(max(times), 1) if times else None},
        "per_action_p50_ms": {action: round(statistics.median([ms for a, ms in latencies if a == action]), 1)
                              for action in sorted({a for a, _ in latencies})},
        "server_rss_mb": {"before": round(rss_before / 2**20, 1) if rss_before else None,
                          "after": round(rss_after / 2**20, 1) if rss_after else None},
        "concurrency_limit": concurrency, "queue_size": 64, "models": [key for key, _ in models],
        "machine": f"{os.cpu_count()} cores, {platform.machine()}; load average at the end "
        + ", ".join(f"{x:.1f}" for x in os.getloadavg()),
        "command": "python benchmarks/app_load.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }  # fmt: skip
    print(json.dumps(report, indent=2))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "load.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        (out / "load.md").write_text(render(report), encoding="utf-8")
    return report


def render(report: dict) -> str:
    latency, rss = report["latency_ms"], report["server_rss_mb"]
    return "\n".join([
        "# The Space under load",
        "",
        f"Generated by `{report['command'].strip()}` against `python app.py` on 127.0.0.1 ({report['machine']}).",
        "",
        "| clients | seconds | requests | errors | p50 ms | p95 ms | max ms | server RSS before -> after (MB) |",
        "|---|---|---|---|---|---|---|---|",
        f"| {report['clients']} | {report['seconds']:g} | {report['requests']} | {report['errors']} | {latency['p50']} | "
        f"{latency['p95']} | {latency['max']} | {rss['before']} -> {rss['after']} |",
        "",
        f"Concurrency limit: {report['concurrency_limit']} requests at once (app.py's `GENHUB_CONCURRENCY`, chosen as one request per "
        f"CPU core of a free Space; the rest wait in a queue of {report['queue_size']}), so latency under load is mostly queueing. "
        f"Per action p50 (ms): {', '.join(f'{k} {v}' for k, v in report['per_action_p50_ms'].items())}.",
        "",
    ])  # fmt: skip


if __name__ == "__main__":
    main()
