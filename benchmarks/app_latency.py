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

4. In the browser (`--browser`, headless Chromium): `gradio_client` has a floor of about 100 ms
   even for a do-nothing endpoint, so it cannot show what a person dragging a slider feels.
   For the latent sliders and the direction slider of each digit model, the time from a
   slider's input event to the frame that paints the new image, measured in the page with
   performance.now().

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

BARS_MS = {"cold_start": 10_000, "sample16_p50": 100, "redraw_p50": 100, "browser_slider_p50": 60}
SLOW_ACTIONS = {"invert": 5, "reconstruct_gan": 5}  # inversion takes ~2 s by design: fewer repeats
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
SLIDER_TO_PAINT_JS = """async ([slider, image, value]) => {
    // From the slider's input event to the frame that paints the new image: the new <img> is
    // seen the moment it lands (MutationObserver), its load event marks it decoded, and a
    // timeout queued from the next animation frame runs once that frame has been rendered.
    const container = document.querySelector(image);
    const old = container.querySelector('img')?.getAttribute('src') || '';
    const input = document.querySelector(slider + ' input[type=range]');
    const setValue = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set;
    const loaded = new Promise((resolve) => {
        const ready = (img) => img && img.getAttribute('src') && img.getAttribute('src') !== old;
        const wait = (img) => (img.complete && img.naturalWidth > 0
            ? resolve(true) : img.addEventListener('load', () => resolve(true), {once: true}));
        const observer = new MutationObserver(() => {
            const img = container.querySelector('img');
            if (ready(img)) { observer.disconnect(); wait(img); }
        });
        observer.observe(container, {subtree: true, childList: true, attributes: true, attributeFilter: ['src']});
        setTimeout(() => { observer.disconnect(); resolve(false); }, 10000);
    });
    const start = performance.now();
    setValue.call(input, value);
    input.dispatchEvent(new Event('input', {bubbles: true}));
    if (!(await loaded)) return -1;
    await new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
    return performance.now() - start;
}"""


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
    parser.add_argument("--models", nargs="+", default=None, help="bundled folder names to time (default: all)")
    parser.add_argument("--browser", action="store_true", help="also time slider input to paint in headless Chromium")
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
    keys = [key for _, key in registry.choices()]
    for label, key in registry.choices():
        if args.models and key.split(":", 1)[1] not in args.models:
            continue
        model = registry.get(key)
        other = next(k for k in keys if k != key) if len(keys) > 1 else key
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
        actions["reconstruct" if logic.is_vae(model) else "reconstruct_gan"] = (
            lambda: client.predict(key, sketch, api_name="/reconstruct"),
            lambda: logic.reconstruct(model, digit),
        )
        actions["compare16"] = (
            lambda: client.predict(key, other, 0, 16, api_name="/compare"),
            lambda: logic.compare(registry, key, other, 0, 16),
        )
        tabs = logic.applicable_tabs(registry, key)
        if tabs["directions"]:
            actions["direction_redraw"] = (
                lambda: client.predict(key, 0, "sefa", 1, 2.0, 3, api_name="/direction_redraw"),
                lambda: logic.direction_redraw(model, 0, "sefa", 1, 2.0, 3),
            )
            if logic.is_digit_model(model) and tabs["invert"]:
                logic.digit_path(model, 0, 3)  # the path is computed once per (seed, digit); a slider redraw reuses it
                actions["direction_redraw_digit"] = (
                    lambda: client.predict(key, 0, "digit", 1, 2.0, 3, api_name="/direction_redraw"),
                    lambda: logic.direction_redraw(model, 0, "digit", 1, 2.0, 3),
                )
        if tabs["invert"]:
            actions["invert"] = (
                lambda: client.predict(key, handle_file(digit), api_name="/invert"),
                lambda: logic.invert_image(model, digit),
            )
        if tabs["neighbours"]:
            actions["neighbours8"] = (
                lambda: client.predict(key, 0, 8, api_name="/neighbours"),
                lambda: logic.neighbours(registry, key, 0, 8),
            )
        models[label] = {}
        for name, (through_app, direct) in actions.items():
            repeats = min(args.repeats, SLOW_ACTIONS.get(name, args.repeats))
            served = timed(through_app, repeats, warmup=1)
            served["compute_p50_ms"] = timed(direct, repeats, warmup=1)["p50_ms"]
            models[label][name] = served
            print(
                f"{label:34s} {name:13s} p50 {served['p50_ms']:7.1f} ms  p95 {served['p95_ms']:7.1f} ms  "
                f"compute p50 {served['compute_p50_ms']:6.2f} ms  (floor p50 {results['floor']['p50_ms']:.1f} ms)"
            )
            save(report, args.out)
    if args.browser:
        report["browser"] = browser_latency(url, registry, args)
        save(report, args.out)
        # The same with the slider redraws on Gradio's queue (app.py's GENHUB_SLIDER_QUEUE=1), to show what it costs.
        with running_app(args.weights, env={"GENHUB_SLIDER_QUEUE": "1"}) as queued:
            report["browser_queued"] = browser_latency(queued.url, registry, args)
        save(report, args.out)
    servers.close()
    report["complete"] = True
    save(report, args.out)
    print(f"wrote {args.out / 'latency.json'} and {args.out / 'latency.md'}")


def browser_latency(url: str, registry, args) -> dict:
    """Slider input event to painted image, in headless Chromium, for each digit model."""
    from playwright.sync_api import sync_playwright

    from genhub.space import app_logic as logic

    results = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.set_default_timeout(30_000)
        page.goto(url)
        for label, key in registry.choices():
            model = registry.get(key)
            if not logic.is_digit_model(model) or (args.models and key.split(":", 1)[1] not in args.models):
                continue
            page.locator("#model input").click()
            page.get_by_role("option").filter(has_text=label).first.click()
            page.wait_for_function("(name) => document.querySelector('#model-info').innerText.includes(name)", arg=label.split(" ")[0])
            page.wait_for_timeout(1000)
            rows = {}
            for tab, slider, image in (("Latent sliders", "#z0", "#slider-image"), ("Directions", "#direction-amount", "#direction-image")):
                page.get_by_role("tab", name=tab).click()
                page.wait_for_timeout(300)
                times = []
                for i in range(args.repeats + 2):
                    value = f"{(i * 0.7) % 4 - 2:.1f}"  # a new value every move (steps of 0.7, wrapping in -2..2)
                    elapsed = page.evaluate(SLIDER_TO_PAINT_JS, [slider, image, value])
                    if elapsed < 0:
                        raise RuntimeError(f"{label}: no new image 10 s after moving {slider} to {value}")
                    if i >= 2:  # two warm-up moves
                        times.append(elapsed)
                times.sort()
                rows[tab] = {"p50_ms": round(statistics.median(times), 1), "p95_ms": round(times[round(0.95 * (len(times) - 1))], 1),
                             "n": len(times)}  # fmt: skip
                print(f"browser {label:34s} {tab:15s} input->paint p50 {rows[tab]['p50_ms']:6.1f} ms  p95 {rows[tab]['p95_ms']:6.1f} ms")
            results[label] = rows
        browser.close()
    return results


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
        "the rest of each served time is Gradio's queue, HTTP/SSE and PNG transfer, which the floor measures alone. "
        "invert and reconstruct_gan (inversion: 150 Adam steps from 4 starts, or 2 s, whichever comes first) are timed 5 "
        "times; direction_redraw_digit moves along a classifier-guided path computed once per (seed, digit) before the timing.",
        "",
    ]
    if report.get("browser"):
        lines += [
            "## In the browser: slider input to painted image",
            "",
            "Headless Chromium against the same server: for each digit model, the time from a slider's `input` event to "
            "the frame that paints the new image (seen by a MutationObserver, its load event, then the next animation "
            "frame), measured in the page with performance.now(). Target: p50 < 60 ms.",
            "",
            "| model | slider | p50 ms | p95 ms | n |",
            "|---|---|---:|---:|---:|",
        ]
        queued = report.get("browser_queued", {})
        lines[-2:] = ["| model | slider | p50 ms | p95 ms | n | on Gradio's queue: p50 ms | p95 ms |", "|---|---|---:|---:|---:|---:|---:|"]
        for label, rows in report["browser"].items():
            for tab, row in rows.items():
                other = queued.get(label, {}).get(tab, {})
                lines.append(f"| {label} | {tab} | {row['p50_ms']} | {row['p95_ms']} | {row['n']} | "
                             f"{other.get('p50_ms', '-')} | {other.get('p95_ms', '-')} |")  # fmt: skip
        lines += ["", "app.py sends slider redraws past the queue (`queue=False`); the last two columns are the same "
                  "sliders with GENHUB_SLIDER_QUEUE=1, on the queue, measured in the same run.", ""]  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    main()
