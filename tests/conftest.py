"""Test-wide settings: offline Hugging Face, a private progress file."""

import os
import pathlib
import tempfile

# Set before any test module (or nbval kernel, which inherits the environment) starts.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ.setdefault(
    "COURSE_PROGRESS_FILE",
    str(pathlib.Path(tempfile.mkdtemp(prefix="course-progress-")) / "progress.json"),
)

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
