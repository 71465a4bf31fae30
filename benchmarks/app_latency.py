"""Latency of the Space as a user meets it: cold start to a served page, then p50/p95 per action.

    python benchmarks/app_latency.py                  # bundled models under weights/
    python benchmarks/app_latency.py --repeats 50 --cold-starts 5

1. Cold start: `python app.py` is started `--cold-starts` + 1 times; each time we measure from
   process start until GET / answers 200 (imports, model loading, server up).
2. Actions: against the last server, each endpoint is called `--repeats` times through
   `gradio_client` (as an API user would) and timed end to end, result download included.
3. Baselines in the same run, to split the time: the same action as a plain Python call
   (model compute + PNG-ready image; `compute`), and a do-nothing Gradio endpoint that returns
   a fixed small PNG through the same kind of queue (`floor`): no app can answer faster than
   that floor on this machine at this load.

Prints a table and writes docs/app/latency.json and docs/app/latency.md. The machine and
its load average (other jobs share the CPU) are recorded with the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import runpy
import statistics
import time
from pathlib import Path
from types import SimpleNamespace

from genhub.space.serve import digit_drawing_file, free_port, running_app

REPO = Path(__file__).resolve().parent.parent

BARS_MS = {"cold_start": 10_000, "sample16_p50": 100, "redraw_p50": 100}


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time a process has used so far (Linux), a load-independent cost."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(call, repeats: int, warmup: int = 2) -> dict:
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return {
        "p50_ms": round(statistics.median(times), 2),
        "p95_ms": round(times[min(len(times) - 1, round(0.95 * (len(times) - 1)))], 2),
        "n": repeats,
    }


def floor_app(app):
    """A Gradio app that does nothing but return a fixed 122x122 PNG, queued like app.py."""
    import gradio as gr
    from PIL import Image

    image = Image.new("L", (122, 122), 128)
    with gr.Blocks() as demo:
        seed = gr.Number(0)
        output = gr.Image(format="png", type="pil")
        gr.Button().click(lambda _: image, seed, output, api_name="floor")
    demo.queue(default_concurrency_limit=app.CONCURRENCY_LIMIT, max_size=app.QUEUE_SIZE)
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    return demo, url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", type=Path, default=REPO / "weights", help="folder of bundled models")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--cold-starts", type=int, default=2, help="extra starts before the one whose server is timed")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "app")
    args = parser.parse_args()

    import torch
    from gradio_client import Client, handle_file

    from genhub.space import app_logic as logic

    app = SimpleNamespace(**runpy.run_path(str(REPO / "app.py"), run_name="genhub_space"))  # the Space's entry point, as a file

    registry = logic.ModelRegistry.from_environment(args.weights, hub_ids="")
    if not registry.models:
        raise SystemExit(f"no model folders under {args.weights}; train or copy one there first")
    load_before = os.getloadavg()

    cold, cold_cpu = [], []
    servers = contextlib.ExitStack()
    for attempt in range(args.cold_starts + 1):  # the last server stays up for the action timings
        starting = running_app(args.weights)
        server = (servers if attempt == args.cold_starts else contextlib.ExitStack()).enter_context(starting)
        cold.append(round(server.start_seconds, 2))
        cpu = cpu_seconds(server.process.pid)
        cold_cpu.append(None if cpu is None else round(cpu, 2))
        if attempt < args.cold_starts:
            starting.__exit__(None, None, None)
    url = server.url
    print(f"cold start to served page: wall {cold} s, CPU time of the server process {cold_cpu} s")

    app.use_one_torch_thread_per_request()  # the compute baseline runs as the server does
    client = Client(url, verbose=False)
    demo, floor_url = floor_app(app)
    floor_client = Client(floor_url, verbose=False)
    results = {"floor": timed(lambda: floor_client.predict(0, api_name="/floor"), args.repeats)}
    demo.close()
    digit = digit_drawing_file()
    sketch = {"background": handle_file(digit), "layers": [], "composite": handle_file(digit)}

    models = {}
    report = {
        "machine": f"{os.cpu_count()}-core CPU ({platform.processor() or platform.machine()}), "
        f"{'CUDA ' + torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU'}",
        "load_average_1m_before_after": [round(load_before[0], 2), None],
        "torch_threads_per_request": torch.get_num_threads(),
        "concurrency_limit": app.CONCURRENCY_LIMIT,
        "cold_start_s": cold,
        "cold_start_median_s": statistics.median(cold),
        "cold_start_cpu_s": cold_cpu,
        "floor": results["floor"],
        "models": models,
        "complete": False,  # saved after every action, so an interrupted run keeps what it measured
        "bars_ms": BARS_MS,
        "versions": {"gradio": __import__("gradio").__version__, "torch": torch.__version__, "python": platform.python_version()},
    }
    for label, key in registry.choices():
        model = registry.get(key)
        values, _ = logic.slider_start(model, 0)
        padded = values + [0.0] * (logic.NUM_SLIDERS - len(values))
        actions = {
            "sample16": (lambda: client.predict(key, 0, 16, api_name="/sample"), lambda: logic.sample_grid(model, 0, 16)),
            "redraw": (
                lambda: client.predict(key, 0, *padded, api_name="/redraw"),
                lambda: logic.slider_redraw(model, 0, values),
            ),
            "slider_start": (lambda: client.predict(key, 0, api_name="/slider_start"), lambda: logic.slider_start(model, 0)),
            "interpolate8": (
                lambda: client.predict(key, 0, 1, 8, api_name="/interpolate_seeds"),
                lambda: logic.interpolate_seeds(model, 0, 1, 8),
            ),
            "explore8": (lambda: client.predict(key, 0, 0, 8, api_name="/explore"), lambda: logic.perturbation_grid(model, 0, 0, 8)),
        }
        if logic.is_vae(model):
            actions["reconstruct"] = (
                lambda: client.predict(key, sketch, api_name="/reconstruct"),
                lambda: logic.reconstruct(model, digit),
            )
        models[label] = {}
        for name, (through_app, direct) in actions.items():
            served = timed(through_app, args.repeats)
            served["compute_p50_ms"] = timed(direct, args.repeats)["p50_ms"]
            models[label][name] = served
            print(
                f"{label:34s} {name:13s} p50 {served['p50_ms']:7.1f} ms  p95 {served['p95_ms']:7.1f} ms  "
                f"compute p50 {served['compute_p50_ms']:6.2f} ms  (floor p50 {results['floor']['p50_ms']:.1f} ms)"
            )
            save(report, args.out)
    servers.close()
    report["complete"] = True
    save(report, args.out)
    print(f"wrote {args.out / 'latency.json'} and {args.out / 'latency.md'}")


def save(report: dict, out: Path) -> None:
    report["load_average_1m_before_after"][1] = round(os.getloadavg()[0], 2)
    out.mkdir(parents=True, exist_ok=True)
    (out / "latency.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "latency.md").write_text(markdown(report))


def markdown(report: dict) -> str:
    lines = [
        "# Space latency",
        "",
        f"Measured by `benchmarks/app_latency.py` on a {report['machine']}; 1-minute load average "
        f"{report['load_average_1m_before_after'][0]} before and {report['load_average_1m_before_after'][1]} after "
        "(the CPU is shared with other jobs). Times are through `gradio_client` against `python app.py` on "
        "127.0.0.1, result download included."
        + ("" if report["complete"] else " **Partial run**: interrupted before every model and action was timed."),
        "",
        f"- Cold start to served page: median **{report['cold_start_median_s']} s** over {len(report['cold_start_s'])} "
        f"starts ({report['cold_start_s']}); bar 10 s. CPU time the server process used until then "
        f"(independent of other jobs' load): {report['cold_start_cpu_s']} s.",
        f"- Floor (a do-nothing Gradio endpoint returning a fixed PNG, same queue): p50 {report['floor']['p50_ms']} ms, "
        f"p95 {report['floor']['p95_ms']} ms.",
        "",
        "| model | action | p50 ms | p95 ms | p50 / floor | compute p50 ms |",
        "|---|---|---:|---:|---:|---:|",
    ]
    floor = report["floor"]["p50_ms"]
    for label, actions in report["models"].items():
        for name, row in actions.items():
            lines.append(
                f"| {label} | {name} | {row['p50_ms']} | {row['p95_ms']} | {row['p50_ms'] / floor:.2f} | {row['compute_p50_ms']} |"
            )
    lines += [
        "",
        "`compute` is the same action called in Python (model + image assembly, one torch thread); "
        "the rest of each served time is Gradio's queue, HTTP/SSE and PNG transfer, which the floor measures alone.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
