"""Build the fine-tuning dataset of notebook 05 (``data/finetune/``) from this Python's built-ins.

Each example is one question-and-answer pair about a function or method that CPython implements
in C (``math.gcd``, ``str.upper``, ``os.stat``...): the question names it with its signature, the
answer is the first sentences of its docstring::

    Question: What does math.gcd(*integers) do?
    Greatest Common Divisor.

The tiny model was pre-trained on docstrings of the standard library's ``.py`` files
(``data/corpus/``); C functions' docstrings are not in that corpus, and the question/answer format
is new to the model, so fine-tuning visibly changes it. (The answer starts on the line after the
question, with no "Answer:" label: after a colon the pre-trained model expects the end of a
document, a habit a short fine-tuning run does not undo.) Answers that do appear word for word in
the pre-training corpus are dropped. The docstrings are part of CPython, under the PSF License
(``data/corpus/PSF_LICENSE.txt``).

Usage, from the repository root in the course venv (a second or two):
    python scripts/build_finetune_dataset.py            # writes data/finetune/
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import importlib
import inspect
import json
import pathlib
import platform
import random
import re
import shlex
import sys

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
DATASET_NAME = "python_builtins_qa"
TEMPLATE = "Question: What does {name} do?\n{answer}"

# Modules implemented in C (no .py source, so not in the pre-training corpus).
C_MODULES = [
    "builtins",
    "math",
    "cmath",
    "itertools",
    "time",
    "sys",
    "posix",
    "gc",
    "marshal",
    "zlib",
    "binascii",
    "unicodedata",
    "atexit",
    "faulthandler",
    "select",
    "fcntl",
    "resource",
    "pwd",
    "grp",
    "_struct",
    "_thread",
]
# Built-in types whose methods are implemented in C, with the name the learner writes.
C_TYPES = {
    "str": str,
    "bytes": bytes,
    "bytearray": bytearray,
    "int": int,
    "float": float,
    "complex": complex,
    "list": list,
    "tuple": tuple,
    "dict": dict,
    "set": set,
    "frozenset": frozenset,
    "memoryview": memoryview,
    "array.array": None,  # filled in at run time
    "collections.deque": None,
}
PUBLIC_MODULE_NAMES = {"posix": "os", "_struct": "struct", "_thread": "_thread"}


def first_sentences(doc: str, max_chars: int) -> str | None:
    """The first paragraph of ``doc`` cut after whole sentences, at most ``max_chars`` long;
    None if it does not read as a prose answer."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", doc.strip()) if p.strip()]
    if not paragraphs:
        return None
    first = paragraphs[0]
    if re.match(r"^[\w.]+\(.*\)( ->.*)?$", first.splitlines()[0]) or "--" in first.splitlines()[0]:
        # an old-style signature line ("name(args) -> type"): the prose is the next paragraph
        if len(paragraphs) < 2:
            return None
        first = paragraphs[1]
    text = " ".join(first.split())
    if not re.match(r"^[A-Z]", text) or len(text) < 12 or ">>>" in text:
        return None
    sentences = re.split(r"(?<=[.!?])\s+", text)
    answer = ""
    for sentence in sentences:
        candidate = f"{answer} {sentence}".strip()
        if len(candidate) > max_chars:
            break
        answer = candidate
    if not answer:
        return None
    return answer if answer.endswith((".", "!", "?")) else None


def signature_text(obj, name: str, max_chars: int) -> str:
    """``name(params)`` from the text signature, or ``name(...)`` when unknown or too long."""
    try:
        params = str(inspect.signature(obj))
    except (TypeError, ValueError):
        return f"{name}(...)"
    params = params.replace("$self, ", "").replace("($self)", "()").replace("$module, ", "")
    params = params.replace("self, ", "", 1) if params.startswith("(self, ") else params
    params = "()" if params == "(self)" else params
    params = params.replace(", /)", ")").replace("(/)", "()")
    text = f"{name}{params}"
    return text if len(text) <= max_chars else f"{name}(...)"


def collect(max_answer_chars: int, max_signature_chars: int) -> list[dict]:
    """Every (name, question, answer) from the C modules and built-in types, in a fixed order."""
    import array
    import collections

    types = dict(C_TYPES, **{"array.array": array.array, "collections.deque": collections.deque})
    items: list[tuple[str, object]] = []
    for module_name in C_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        public = PUBLIC_MODULE_NAMES.get(module_name, module_name)
        for attr in sorted(vars(module)):
            obj = getattr(module, attr)
            if attr.startswith("_") or not inspect.isbuiltin(obj):
                continue
            items.append((attr if public == "builtins" else f"{public}.{attr}", obj))
    for type_name, cls in types.items():
        for attr in sorted(vars(cls)):
            obj = vars(cls)[attr]
            if attr.startswith("_") or not callable(obj):
                continue
            items.append((f"{type_name}.{attr}", obj))
    examples, seen_answers = [], set()
    for name, obj in items:
        doc = inspect.getdoc(obj) if getattr(obj, "__doc__", None) else None
        answer = first_sentences(doc, max_answer_chars) if doc else None
        if answer is None or answer in seen_answers:
            continue
        seen_answers.add(answer)
        question_name = signature_text(obj, name, max_signature_chars)
        examples.append({"name": name, "text": TEMPLATE.format(name=question_name, answer=answer)})
    return examples


def drop_pretraining_overlap(examples: list[dict], corpus_dir: pathlib.Path) -> tuple[list, int]:
    """Drop examples whose answer appears word for word in the pre-training corpus."""
    corpus = " ".join(
        " ".join(p.read_text(encoding="utf-8").split())
        for p in sorted(corpus_dir.glob("*.txt"))
        if "LICENSE" not in p.name
    )
    kept = [ex for ex in examples if ex["text"].split("\n", 1)[1] not in corpus]
    return kept, len(examples) - len(kept)


def sha256(path: pathlib.Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=pathlib.Path, default=REPO_ROOT / "data" / "finetune")
    p.add_argument("--corpus-dir", type=pathlib.Path, default=REPO_ROOT / "data" / "corpus")
    p.add_argument("--heldout-fraction", type=float, default=0.15)
    p.add_argument("--max-answer-chars", type=int, default=160)
    p.add_argument("--max-signature-chars", type=int, default=48)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    examples = collect(args.max_answer_chars, args.max_signature_chars)
    collected = len(examples)
    examples, overlap = drop_pretraining_overlap(examples, args.corpus_dir)
    order = list(range(len(examples)))
    random.Random(args.seed).shuffle(order)
    n_heldout = round(args.heldout_fraction * len(examples))
    heldout_ids = set(order[:n_heldout])
    splits = {
        "train": [examples[i] for i in sorted(set(order) - heldout_ids)],
        "heldout": [examples[i] for i in sorted(heldout_ids)],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    files = {}
    for split, rows in splits.items():
        path = args.out / f"{DATASET_NAME}.{split}.jsonl"
        with path.open("w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        files[path.name] = {"examples": len(rows), "sha256": sha256(path)}
    info = {
        "dataset": DATASET_NAME,
        "description": "Question/answer pairs about CPython's C-implemented functions and methods, "
        "built from their docstrings (first sentences of the first paragraph).",
        "template": TEMPLATE,
        "source": f"docstrings of CPython {platform.python_version()} ({platform.system()}), "
        "modules: " + ", ".join(C_MODULES) + "; methods of: " + ", ".join(C_TYPES),
        "license": "PSF License Agreement for Python (data/corpus/PSF_LICENSE.txt)",
        "pretraining_corpus_sha256": {
            p.name: sha256(p)
            for p in sorted(args.corpus_dir.glob("*.txt"))
            if "LICENSE" not in p.name
        },
        "collected": collected,
        "dropped_pretraining_overlap": overlap,
        "heldout_fraction": args.heldout_fraction,
        "seed": args.seed,
        "files": files,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "built": datetime.date.today().isoformat(),
        "command": ("python scripts/build_finetune_dataset.py " + shlex.join(sys.argv[1:])).strip(),
    }
    (args.out / "build_info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    print(
        f"{collected} examples collected, {overlap} dropped (in the pre-training corpus): "
        f"train {len(splits['train'])}, heldout {len(splits['heldout'])} -> {args.out}"
    )


if __name__ == "__main__":
    main()
