"""Test-wide settings: offline Hugging Face, a private progress file."""

import os
import pathlib
import tempfile

import pytest

# Set before any test module (or nbval kernel, which inherits the environment) starts.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
# Spinning OpenMP threads slow small CPU steps 3-10x when the cores are shared (kernels inherit it).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault(
    "COURSE_PROGRESS_FILE",
    str(pathlib.Path(tempfile.mkdtemp(prefix="course-progress-")) / "progress.json"),
)

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]

# The real-browser tests (test_browser.py, test_site.py): Debian's Chromium at a projector's size,
# with nothing that phones home.
CHROMIUM = pathlib.Path("/usr/bin/chromium")
VIEWPORT = {"width": 1280, "height": 720}
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models gain nothing from threads and lose a lot when the cores are shared."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
