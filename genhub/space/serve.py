"""Run the Space (`python app.py`) as a server on 127.0.0.1, for browser tests and load benchmarks.

with running_app(weights_dir) as app:
    app.url, app.start_seconds, app.process.pid
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from genhub.assets import CHECKOUT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RunningApp:
    process: subprocess.Popen
    url: str
    start_seconds: float
    log: Path

    def rss_bytes(self) -> int | None:
        """The server's resident memory now (Linux /proc), or None."""
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None


@contextlib.contextmanager
def running_app(weights_dir=None, *, app_file=None, timeout: float = 120.0, env: dict | None = None):
    """Start app.py with its bundled models from `weights_dir` on a free loopback port, wait until
    its page is served, yield a RunningApp, and stop it afterwards."""
    port = free_port()
    environment = {
        **os.environ,
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        "HF_HUB_OFFLINE": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        **({"GENHUB_WEIGHTS_DIR": str(weights_dir)} if weights_dir else {}),
        **(env or {}),
    }
    app_file = Path(app_file or CHECKOUT / "app.py")
    url = f"http://127.0.0.1:{port}/"
    log = Path(tempfile.mkstemp(prefix="genhub-app-", suffix=".log")[1])
    started = time.perf_counter()
    with open(log, "w") as output:
        process = subprocess.Popen([sys.executable, str(app_file)], cwd=app_file.parent, env=environment, stdout=output,
                                   stderr=subprocess.STDOUT)  # fmt: skip
    try:
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                if process.poll() is not None or time.perf_counter() - started > timeout:
                    raise RuntimeError(f"`python app.py` did not serve {url}:\n{log.read_text()[-3000:]}") from None
                time.sleep(0.05)
        yield RunningApp(process, url, time.perf_counter() - started, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def digit_drawing_file() -> str:
    """A PNG of a digit "1" drawn in black on white, as a person would on the sketchpad: what
    load tests and latency benchmarks upload to Reconstruct."""
    from PIL import Image, ImageDraw

    path = Path(tempfile.mkdtemp()) / "digit.png"
    image = Image.new("RGB", (280, 280), "white")
    ImageDraw.Draw(image).line([(140, 50), (150, 230)], fill="black", width=24)
    image.save(path)
    return str(path)
