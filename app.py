"""genhub Space: sample, steer, interpolate and probe small VAEs and GANs.

    python app.py                                  # serves http://127.0.0.1:7860
    GENHUB_MODELS=owner/name,owner/other python app.py   # add Hub models to the bundled ones

Models: every folder under weights/ holding a config.json (bundled, loaded with
`from_pretrained` from the local folder), plus Hub ids from GENHUB_MODELS or the textbox.
When the Hub cannot be reached the bundled models keep working and a notice says so.
All the work is done by `genhub.space.app_logic`; this file only lays out widgets and events.
"""

from __future__ import annotations

import functools
import logging
import os

import gradio as gr
import torch

from genhub.models.hub import ModelLoadError
from genhub.space import app_logic as logic

log = logging.getLogger("genhub.app")

CONCURRENCY_LIMIT = int(os.environ.get("GENHUB_CONCURRENCY", "2"))  # one request per CPU core on a free Space
QUEUE_SIZE = 64
CACHE_SECONDS = 300
MAX_FILE_SIZE = "10mb"  # uploads larger than this are refused by the server before they are stored
CSS = ".pixelated img { image-rendering: pixelated; }"  # keep small images crisp when the browser scales them
# Tabs that apply to some models only (logic.applicable_tabs). Gradio 6.31 does not hide a tab's
# button when the tab's visibility is updated from Python (gradio-app/gradio#10904 and kin; checked
# in Chromium), so the page hides the buttons itself, and leaves a hidden tab that was open.
# Slider redraws (a millisecond of compute) skip Gradio's queue: a direct request answers a drag
# faster than the queue's event stream (docs/app/latency.md measures both; GENHUB_SLIDER_QUEUE=1 queues them).
SLIDER_QUEUE = os.environ.get("GENHUB_SLIDER_QUEUE", "0") == "1"
MODEL_TABS = ("directions", "invert", "neighbours")
SHOW_TABS_JS = """(flags) => {
    for (const [id, shown] of Object.entries(flags || {})) {
        for (const button of document.querySelectorAll(`button[role="tab"][data-tab-id="${id}"]`)) {
            button.style.display = shown ? "" : "none";
            if (!shown && button.getAttribute("aria-selected") === "true") {
                document.querySelector('button[role="tab"][data-tab-id="sample"]')?.click();
            }
        }
    }
    return [];
}"""


def user_errors(function):
    """Turn bad input into a message in the UI; an unexpected failure is logged and reported, never fatal."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except (logic.AppInputError, ModelLoadError) as error:
            raise gr.Error(str(error), print_exception=False) from None
        except gr.Error:
            raise
        except Exception as error:  # one request's failure must not take the app down
            log.exception("request failed")
            raise gr.Error(f"Something went wrong: {type(error).__name__}: {error}") from None

    return wrapper


def notice_markdown(notices: list[str]) -> str:
    return "\n".join(f"> ⚠️ {notice}" for notice in notices)


def build_app(registry: logic.ModelRegistry | None = None) -> gr.Blocks:
    registry = registry or logic.ModelRegistry.from_environment()
    default = registry.default_key()
    model = registry.get(default) if default else None
    start_values, start_image = logic.slider_start(model, 0) if model else ([], None)

    # Every response image is a file in Gradio's cache: files older than CACHE_SECONDS are deleted
    # every CACHE_SECONDS / 2, which bounds the cache at a few minutes of traffic.
    with gr.Blocks(title="genhub: small generative models", delete_cache=(CACHE_SECONDS // 2, CACHE_SECONDS)) as demo:
        gr.Markdown(
            "# genhub: small VAEs and GANs\n"
            "Sample, steer, interpolate and probe small generative models trained on MNIST, SVHN, anime and comic faces. "
            "Every model is a Hugging Face Hub model (`safetensors` + `config.json`)."
        )
        notices = gr.Markdown(notice_markdown(registry.notices), visible=bool(registry.notices), elem_id="notices")
        with gr.Row():
            model_choice = gr.Dropdown(registry.choices(), value=default, label="Model", scale=2, elem_id="model")
            hub_id = gr.Textbox(label="Load a model from the Hub", placeholder="owner/name", scale=2, elem_id="hub-id")
            load_hub = gr.Button("Load", scale=1, elem_id="load-hub")
        info = gr.Markdown(registry.describe(default) if default else "", elem_id="model-info")
        tab_flags = gr.JSON(logic.applicable_tabs(registry, default) if default else {}, visible=False, elem_id="tab-flags")

        with gr.Tabs():
            with gr.Tab("Sample", id="sample"):
                with gr.Row():
                    sample_seed = gr.Number(0, label="Seed", precision=0, minimum=0, maximum=logic.MAX_SEED)
                    sample_count = gr.Slider(1, logic.MAX_SAMPLES, value=16, step=1, label="Number of images")
                    sample_truncation = gr.Slider(
                        0,
                        logic.MAX_TRUNCATION,
                        value=0,
                        step=0.1,
                        label="Truncation t (0 = off)",
                        info="every |z_i| <= t: fewer odd samples, less variety",
                        elem_id="sample-truncation",
                    )
                    sample_button = gr.Button("Sample", variant="primary", elem_id="sample-button")
                sample_image = gr.Image(
                    label="Samples (download as PNG)",
                    format="png",
                    type="pil",
                    buttons=["download"],
                    interactive=False,
                    elem_id="sample-image",
                    elem_classes="pixelated",
                )

            with gr.Tab("Latent sliders", id="sliders"):
                gr.Markdown(
                    "The latent code of one sample; the sliders set its leading dimensions and redraw "
                    "the image as you drag. The other dimensions stay as the seed drew them."
                )
                with gr.Row():
                    slider_seed = gr.Number(0, label="Seed", precision=0, minimum=0, maximum=logic.MAX_SEED)
                    new_code = gr.Button("Draw this seed's code", elem_id="slider-seed-button")
                with gr.Row():
                    with gr.Column():
                        count = logic.num_sliders(model) if model else 0
                        sliders = [
                            gr.Slider(
                                -logic.SLIDER_LIMIT,
                                logic.SLIDER_LIMIT,
                                step=0.05,
                                label=f"z[{i}]",
                                value=start_values[i] if i < count else 0.0,
                                visible=i < count,
                                elem_id=f"z{i}",
                            )
                            for i in range(logic.NUM_SLIDERS)
                        ]
                    slider_image = gr.Image(
                        start_image,
                        label="Decoded",
                        format="png",
                        type="pil",
                        interactive=False,
                        elem_id="slider-image",
                        elem_classes="pixelated",
                    )

            with gr.Tab("Interpolate", id="interpolate"):
                gr.Markdown(
                    "Rows: **lerp** (straight line in latent space), **slerp** (great circle, keeps the "
                    "code's norm typical) and a plain **pixel** cross-fade of the two end images."
                )
                steps = gr.Slider(logic.MIN_STEPS, logic.MAX_STEPS, value=8, step=1, label="Steps")
                with gr.Row():
                    seed_a = gr.Number(0, label="Seed A", precision=0, minimum=0, maximum=logic.MAX_SEED)
                    seed_b = gr.Number(1, label="Seed B", precision=0, minimum=0, maximum=logic.MAX_SEED)
                    seeds_button = gr.Button("Interpolate seeds", variant="primary", elem_id="interpolate-seeds")
                with gr.Group():
                    gr.Markdown(
                        "Or between two images of your own: a VAE encodes them to their posterior means, a GAN "
                        "finds their codes by inversion (about 1 s each)."
                    )
                    with gr.Row():
                        # Uploads reach genhub undecoded (preprocess=False below): genhub checks size, pixels and
                        # format with a clear message, where Gradio's own decoding fails with a generic error.
                        image_a = gr.Image(label="Image A", type="filepath", sources=["upload", "clipboard"], elem_id="image-a")
                        image_b = gr.Image(label="Image B", type="filepath", sources=["upload", "clipboard"], elem_id="image-b")
                    images_button = gr.Button("Interpolate images", elem_id="interpolate-images")
                strip = gr.Image(label="Strip", format="png", type="pil", interactive=False, elem_id="strip", elem_classes="pixelated")
                gif = gr.Image(label="GIF", type="filepath", interactive=False, elem_id="gif", elem_classes="pixelated")

            with gr.Tab("Explore", id="explore"):
                gr.Markdown(
                    "Each row is one latent dimension i; the columns are z_i + eps for eps = -5..4 "
                    "(the sixth column, eps = 0, is the sample itself)."
                )
                with gr.Row():
                    explore_seed = gr.Number(0, label="Seed", precision=0, minimum=0, maximum=logic.MAX_SEED)
                    first_dim = gr.Number(0, label="First dimension", precision=0, minimum=0)
                    rows = gr.Slider(1, logic.MAX_ROWS, value=8, step=1, label="Rows")
                    explore_button = gr.Button("Perturb", variant="primary", elem_id="explore-button")
                explore_image = gr.Image(
                    label="Perturbation grid",
                    format="png",
                    type="pil",
                    interactive=False,
                    elem_id="explore-image",
                    elem_classes="pixelated",
                )

            with gr.Tab("Compare", id="compare"):
                gr.Markdown("Two models side by side, the same seed and grid size, and the metrics their cards record.")
                with gr.Row():
                    compare_a = gr.Dropdown(registry.choices(), value=default, label="Model A", elem_id="compare-a")
                    compare_b = gr.Dropdown(
                        registry.choices(), value=(registry.choices()[1][1] if len(registry.choices()) > 1 else default),
                        label="Model B", elem_id="compare-b",
                    )  # fmt: skip
                    compare_seed = gr.Number(0, label="Seed", precision=0, minimum=0, maximum=logic.MAX_SEED)
                    compare_count = gr.Slider(1, logic.MAX_SAMPLES, value=16, step=1, label="Number of images")
                compare_button = gr.Button("Compare", variant="primary", elem_id="compare-button")
                with gr.Row():
                    compare_image_a = gr.Image(label="A", format="png", type="pil", interactive=False, elem_id="compare-image-a",
                                               elem_classes="pixelated")  # fmt: skip
                    compare_image_b = gr.Image(label="B", format="png", type="pil", interactive=False, elem_id="compare-image-b",
                                               elem_classes="pixelated")  # fmt: skip
                compare_table = gr.Dataframe(headers=["metric (from the cards)", "A", "B"], interactive=False, elem_id="compare-table")

            with gr.Tab("Directions", id="directions"):
                gr.Markdown(
                    "Directions found without labels: **SeFa** (the first layer's top eigenvectors, closed form) and "
                    "**GANSpace** (principal components of the first layer's activations). Move one sample along a "
                    "direction, or see the top directions at -3..3. For digit models, **digit** follows the evaluator "
                    "CNN's gradient towards a chosen digit (\"make it more like a 3\")."
                )
                with gr.Row():
                    direction_method = gr.Radio(list(logic.DIRECTION_METHODS), value="sefa", label="Method", elem_id="direction-method")
                    direction_digit = gr.Dropdown(list(range(10)), value=3, label="Digit (method digit)", elem_id="direction-digit")
                    direction_seed = gr.Number(0, label="Seed", precision=0, minimum=0, maximum=logic.MAX_SEED)
                    direction_index = gr.Slider(1, logic.NUM_DIRECTIONS, value=1, step=1, label="Direction")
                    direction_amount = gr.Slider(
                        -logic.DIRECTION_LIMIT, logic.DIRECTION_LIMIT, value=0, step=0.1, label="Amount", elem_id="direction-amount"
                    )
                direction_image = gr.Image(
                    label="Moved sample", format="png", type="pil", interactive=False, elem_id="direction-image", elem_classes="pixelated"
                )
                direction_grid_button = gr.Button("Top directions at -3..3", elem_id="direction-grid-button")
                direction_grid = gr.Image(
                    label="Directions", format="png", type="pil", interactive=False, elem_id="direction-grid", elem_classes="pixelated"
                )

            with gr.Tab("Invert", id="invert"):
                gr.Markdown(
                    "Upload an image: the model's closest drawing of it is found by optimising the latent code from "
                    "four random starts (about 2 s; digit models also match the evaluator's features)."
                )
                with gr.Row():
                    invert_input = gr.Image(label="Image", type="filepath", sources=["upload", "clipboard"], elem_id="invert-input")
                    with gr.Column():
                        invert_output = gr.Image(
                            label="Model input | projection", format="png", type="pil", interactive=False, elem_id="invert-output",
                            elem_classes="pixelated",
                        )  # fmt: skip
                        invert_loss = gr.Markdown(elem_id="invert-loss")
                invert_button = gr.Button("Invert", variant="primary", elem_id="invert-button")

            with gr.Tab("Neighbours", id="neighbours"):
                gr.Markdown(
                    "The memorisation view: a sample beside its nearest training images, in a small index of training-image "
                    "features shipped with the model, and how close that is next to new real images."
                )
                with gr.Row():
                    neighbour_seed = gr.Number(0, label="Seed", precision=0, minimum=0, maximum=logic.MAX_SEED)
                    neighbour_count = gr.Slider(1, 16, value=logic.NUM_NEIGHBOURS, step=1, label="Neighbours")
                    neighbour_button = gr.Button("Find neighbours", variant="primary", elem_id="neighbours-button")
                neighbour_image = gr.Image(
                    label="Sample | nearest training images", format="png", type="pil", interactive=False, elem_id="neighbour-image",
                    elem_classes="pixelated",
                )  # fmt: skip
                neighbour_note = gr.Markdown(elem_id="neighbour-note")
                neighbour_table = gr.Dataframe(
                    headers=["rank", "training image", "distance", "over held-out median"], interactive=False, elem_id="neighbour-table"
                )

            with gr.Tab("Reconstruct", id="reconstruct"):
                with gr.Group():
                    gr.Markdown(
                        "Draw a digit (or upload an image): a VAE encodes it and decodes the posterior mean; a GAN finds "
                        "its closest drawing by inversion (about 2 s)."
                    )
                    with gr.Row():
                        sketch = gr.Sketchpad(
                            label="Draw or upload",
                            type="filepath",
                            image_mode="RGBA",
                            sources=["upload", "clipboard"],
                            canvas_size=(280, 280),
                            brush=gr.Brush(default_size=12, colors=["#000000"], color_mode="fixed"),
                            layers=False,
                            elem_id="sketch",
                        )
                        reconstruction = gr.Image(
                            label="Model input | reconstruction",
                            format="png",
                            type="pil",
                            interactive=False,
                            elem_id="reconstruction",
                            elem_classes="pixelated",
                        )
                    reconstruct_button = gr.Button("Reconstruct", variant="primary", elem_id="reconstruct-button")

        # -- events ----------------------------------------------------------------------
        @user_errors
        def sample(key, seed, n, truncation=0.0):
            return logic.sample_grid(registry.get(key), seed, n, truncation)

        @user_errors
        def start_sliders(key, seed):
            model = registry.get(key)
            values, image = logic.slider_start(model, seed)
            count = len(values)
            updates = [gr.update(value=values[i] if i < count else 0.0, visible=i < count) for i in range(logic.NUM_SLIDERS)]
            return *updates, image

        @user_errors
        def redraw(key, seed, *values):
            model = registry.get(key)
            return logic.slider_redraw(model, seed, values[: logic.num_sliders(model)])

        @user_errors
        def select_model(key):
            return registry.describe(key), logic.applicable_tabs(registry, key)

        @user_errors
        def add_hub_model(repo_id):
            key, message = registry.add_hub_model(repo_id)
            if key is None:
                gr.Warning(message)
                return gr.update(), gr.update(value=notice_markdown([message]), visible=True)
            return gr.update(choices=registry.choices(), value=key), gr.update(value=message, visible=True)

        sample_inputs = [model_choice, sample_seed, sample_count, sample_truncation]
        gr.on([sample_button.click, sample_seed.submit], sample, sample_inputs, sample_image, api_name="sample")
        gr.on(
            [new_code.click, slider_seed.submit],
            start_sliders,
            [model_choice, slider_seed],
            [*sliders, slider_image],
            api_name="slider_start",
        )
        gr.on(
            [s.input for s in sliders],
            redraw,
            [model_choice, slider_seed, *sliders],
            slider_image,
            api_name="redraw",
            show_progress="hidden",
            trigger_mode="always_last",
            queue=SLIDER_QUEUE,
        )
        seeds_button.click(
            user_errors(lambda key, a, b, n: logic.interpolate_seeds(registry.get(key), a, b, n)),
            [model_choice, seed_a, seed_b, steps],
            [strip, gif],
            api_name="interpolate_seeds",
        )
        images_button.click(
            user_errors(lambda key, a, b, n: logic.interpolate_images(registry.get(key), a, b, n)),
            [model_choice, image_a, image_b, steps],
            [strip, gif],
            api_name="interpolate_images",
            preprocess=False,  # the uploads reach genhub undecoded, so a bad file gets genhub's clear message
        )
        explore_button.click(
            user_errors(lambda key, seed, first, n: logic.perturbation_grid(registry.get(key), seed, first, n)),
            [model_choice, explore_seed, first_dim, rows],
            explore_image,
            api_name="explore",
        )
        compare_button.click(
            user_errors(lambda a, b, seed, n: logic.compare(registry, a, b, seed, n)),
            [compare_a, compare_b, compare_seed, compare_count],
            [compare_image_a, compare_image_b, compare_table],
            api_name="compare",
        )
        direction_inputs = [model_choice, direction_seed, direction_method, direction_index, direction_amount, direction_digit]
        gr.on(
            [direction_amount.input, direction_index.input, direction_method.input, direction_digit.input,
             direction_seed.submit],  # fmt: skip
            user_errors(lambda key, *values: logic.direction_redraw(registry.get(key), *values)),
            direction_inputs,
            direction_image,
            api_name="direction_redraw",
            show_progress="hidden",
            trigger_mode="always_last",
            queue=SLIDER_QUEUE,
        )
        direction_grid_button.click(
            user_errors(lambda key, seed, method: logic.direction_grid(registry.get(key), seed, method, logic.NUM_DIRECTIONS)),
            [model_choice, direction_seed, direction_method],
            direction_grid,
            api_name="directions",
        )
        invert_button.click(
            user_errors(lambda key, image: logic.invert_image(registry.get(key), image)),
            [model_choice, invert_input],
            [invert_output, invert_loss],
            api_name="invert",
            preprocess=False,  # genhub decodes and checks the upload itself
        )
        reconstruct_button.click(
            user_errors(lambda key, image: logic.reconstruct(registry.get(key), image)),
            [model_choice, sketch],
            reconstruction,
            api_name="reconstruct",
            preprocess=False,  # as above: genhub decodes and checks the upload or drawing itself
        )
        neighbour_button.click(
            user_errors(lambda key, seed, n: logic.neighbours(registry, key, seed, n)),
            [model_choice, neighbour_seed, neighbour_count],
            [neighbour_image, neighbour_table, neighbour_note],
            api_name="neighbours",
        )
        model_choice.change(select_model, model_choice, [info, tab_flags], api_name="select_model").then(
            None, tab_flags, None, js=SHOW_TABS_JS
        ).then(start_sliders, [model_choice, slider_seed], [*sliders, slider_image], api_visibility="private").then(
            sample, sample_inputs, sample_image, api_visibility="private"
        )
        gr.on([load_hub.click, hub_id.submit], add_hub_model, hub_id, [model_choice, notices], api_name="load_hub").then(
            lambda: (gr.update(choices=registry.choices()), gr.update(choices=registry.choices())),
            None,
            [compare_a, compare_b],
            api_visibility="private",
        )
        demo.load(sample, sample_inputs, sample_image, api_visibility="private")
        demo.load(None, tab_flags, None, js=SHOW_TABS_JS)

    demo.queue(default_concurrency_limit=CONCURRENCY_LIMIT, max_size=QUEUE_SIZE)
    return demo


def use_one_torch_thread_per_request() -> None:
    """Small models run fastest single-threaded: with several intra-op threads on a shared 2-core
    CPU, a 16-image MLP decode measured ~40 ms instead of ~0.1 ms (threads wait on each other).
    Parallelism comes from the queue instead (CONCURRENCY_LIMIT requests at once)."""
    torch.set_num_threads(int(os.environ.get("GENHUB_TORCH_THREADS", "1")))


def launch(demo: gr.Blocks | None = None, **kwargs):
    """Serve the app; keyword arguments go to `gr.Blocks.launch` (server_name, server_port, ...)."""
    use_one_torch_thread_per_request()
    return (demo or build_app()).launch(css=CSS, **{"max_file_size": MAX_FILE_SIZE, **kwargs})


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    launch()
