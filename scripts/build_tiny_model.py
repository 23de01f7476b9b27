"""Build the course's own tiny GPT-2 (``data/models/tiny-gpt2``) from the shipped corpus.

Steps, all seeded and on the CPU in fp32:
1. (only with ``--extract-corpus``) extract English prose from the docstrings of this Python's
   standard library into ``data/corpus/`` (train split + every 20th document held out);
2. train a byte-level BPE tokenizer on the train split (``<|endoftext|>`` is bos/eos/pad/unk);
3. pre-train a small GPT-2 (AdamW, linear warmup then cosine decay, gradient clipping 1.0);
4. save tokenizer + safetensors weights with ``save_pretrained``, ``build_info.json`` (what was
   built, how, how good) and ``training_curve.png``.

Usage (from the repository root, in the course venv; about 11 CPU-minutes, i.e. ~6 minutes on
2 idle cores, longer when other processes share them):
    python scripts/build_tiny_model.py                  # rebuild the model from data/corpus
    python scripts/build_tiny_model.py --extract-corpus # re-extract the corpus first
    python scripts/build_tiny_model.py --corpus-only --extract-corpus
"""

from __future__ import annotations

import argparse
import ast
import datetime
import hashlib
import json
import math
import os
import pathlib
import platform
import re
import shlex
import shutil
import sys
import sysconfig
import time

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Threads sleep instead of spinning while they wait: on a CPU shared with other processes a
# spinning OpenMP barrier made steps 3-5x slower (measured on the 2-core build machine).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
CORPUS_NAME = "python_stdlib_docstrings"
EOT = "<|endoftext|>"
# Parts of the standard library that are tests, demos, vendored data or not prose.
SKIP_DIRS = {
    "test",
    "tests",
    "idle_test",
    "idlelib",
    "turtledemo",
    "lib2to3",
    "ensurepip",
    "pydoc_data",
    "site-packages",
    "__phello__",
}


# --------------------------------------------------------------------------------- corpus


def is_prose(paragraph: str) -> bool:
    """Keep a docstring paragraph if it reads as English prose: starts with a capital letter,
    has at least 6 words, at least 60% of them plain words, and no doctest or shell lines."""
    if re.search(r"(^|\n)\s*(>>>|\.\.\.|\$ |%)", paragraph):
        return False
    words = paragraph.split()
    if len(words) < 6 or not re.match(r"[A-Z]", paragraph.lstrip()):
        return False
    plain = sum(bool(re.fullmatch(r"[A-Za-z][a-z]*[,.;:]?", word)) for word in words)
    return plain / len(words) >= 0.6


def extract_docstring_documents(stdlib_dir: pathlib.Path) -> list[str]:
    """One document per docstring (module, class, function) of every ``.py`` file under
    ``stdlib_dir`` (sorted paths, tests excluded): its prose paragraphs, each on one line,
    exact duplicates of an earlier paragraph dropped."""
    documents, seen = [], set()
    files = sorted(p for p in stdlib_dir.rglob("*.py") if not SKIP_DIRS & set(p.parts))
    for path in files:
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError):
            continue
        for node in ast.walk(tree):
            if not isinstance(
                node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef
            ):
                continue
            docstring = ast.get_docstring(node)
            if not docstring:
                continue
            paragraphs = []
            for raw in re.split(r"\n\s*\n", docstring):
                if not is_prose(raw):
                    continue
                paragraph = " ".join(raw.split())
                if paragraph not in seen and EOT not in paragraph:
                    seen.add(paragraph)
                    paragraphs.append(paragraph)
            if paragraphs:
                documents.append("\n".join(paragraphs))
    return documents


def write_corpus(corpus_dir: pathlib.Path, heldout_every: int = 20) -> dict:
    """Extract the corpus from this interpreter's standard library into ``corpus_dir``:
    ``<name>.train.txt``, ``<name>.heldout.txt`` (every ``heldout_every``-th document, i.e. 5%,
    spread over the whole library so it is distributed like the train split) and the PSF
    license. Returns a summary."""
    stdlib_dir = pathlib.Path(sysconfig.get_paths()["stdlib"])
    documents = extract_docstring_documents(stdlib_dir)
    is_heldout = [(i + 1) % heldout_every == 0 for i in range(len(documents))]
    splits = {
        "train": [d for d, held in zip(documents, is_heldout, strict=True) if not held],
        "heldout": [d for d, held in zip(documents, is_heldout, strict=True) if held],
    }
    corpus_dir.mkdir(parents=True, exist_ok=True)
    for split, docs in splits.items():
        text = f"\n{EOT}\n".join(docs) + "\n"
        (corpus_dir / f"{CORPUS_NAME}.{split}.txt").write_text(text, encoding="utf-8")
    license_src = stdlib_dir / "LICENSE.txt"
    if license_src.is_file():
        shutil.copyfile(license_src, corpus_dir / "PSF_LICENSE.txt")
    summary = {
        "source": f"docstrings of the Python {platform.python_version()} standard library",
        "stdlib_dir": str(stdlib_dir),
        "documents": {split: len(docs) for split, docs in splits.items()},
    }
    print(f"corpus: {summary}")
    return summary


def corpus_stats(corpus_dir: pathlib.Path) -> dict:
    """Size and sha256 of each shipped corpus file (recorded in build_info.json)."""
    stats = {}
    for split in ("train", "heldout"):
        path = corpus_dir / f"{CORPUS_NAME}.{split}.txt"
        data = path.read_bytes()
        stats[split] = {
            "file": str(path.relative_to(REPO_ROOT)),
            "bytes": len(data),
            "words": len(data.decode("utf-8").split()),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
    return stats


# ------------------------------------------------------------------------------ tokenizer


def train_tokenizer(documents: list[str], vocab_size: int, model_max_length: int):
    """Byte-level BPE (GPT-2 style) trained on ``documents``, wrapped as a transformers
    ``GPT2Tokenizer`` whose bos/eos/unk/pad token is ``<|endoftext|>`` (id 0)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Tokenizer

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(documents, trainer=trainer)
    model_state = json.loads(bpe.to_str())["model"]
    merges = [
        tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model_state["merges"]
    ]
    tokenizer = GPT2Tokenizer(
        vocab=model_state["vocab"],
        merges=merges,
        unk_token=EOT,
        bos_token=EOT,
        eos_token=EOT,
        pad_token=EOT,
        model_max_length=model_max_length,
    )
    return tokenizer


# ---------------------------------------------------------------------------------- model


def make_model(args, tokenizer):
    from transformers import GPT2Config, GPT2LMHeadModel

    eot_id = tokenizer.convert_tokens_to_ids(EOT)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=args.seq_len,
        n_embd=args.n_embd,
        n_layer=args.n_layer,
        n_head=args.n_head,
        resid_pdrop=args.dropout,
        embd_pdrop=args.dropout,
        attn_pdrop=args.dropout,
        bos_token_id=eot_id,
        eos_token_id=eot_id,
        pad_token_id=eot_id,
    )
    model = GPT2LMHeadModel(config)
    model.loss_type = "ForCausalLM"  # the loss it uses anyway; stops a warning on first forward
    model.generation_config.pad_token_id = eot_id
    return model


def lr_at(step: int, *, peak: float, warmup: int, total: int, floor: float = 0.1) -> float:
    """Linear warmup to ``peak`` over ``warmup`` steps, then cosine decay to ``floor * peak``."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def train(args, model, tokenizer):
    """The training loop; returns the loss history."""
    from course_utils.data import heldout_loss, token_batches

    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": args.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=args.lr,
        betas=(0.9, 0.95),
        fused=False,
    )
    warmup = max(1, int(args.warmup_fraction * args.steps))
    history = {"step": [], "train_loss": [], "eval_step": [], "heldout_loss": []}
    eval_kwargs = {"batch_size": 16, "seq_len": args.seq_len, "num_batches": args.eval_batches}
    batches = token_batches(
        tokenizer, "train", args.batch_size, args.seq_len, seed=args.seed, num_batches=args.steps
    )
    model.train()
    bar = tqdm(batches, total=args.steps, desc="training", unit="step", mininterval=2.0)
    for step, batch in enumerate(bar):
        lr = lr_at(step, peak=args.lr, warmup=warmup, total=args.steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        history["step"].append(step + 1)
        history["train_loss"].append(loss.item())
        if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
            held = heldout_loss(model, tokenizer, **eval_kwargs)
            history["eval_step"].append(step + 1)
            history["heldout_loss"].append(held)
            bar.set_postfix(loss=f"{loss.item():.3f}", heldout=f"{held:.3f}", lr=f"{lr:.1e}")
    return history


# ------------------------------------------------------------------------------- outputs


def plot_curve(history: dict, chance: float, path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps, train_loss = history["step"], history["train_loss"]
    window = 20
    smooth = [
        sum(train_loss[max(0, i - window + 1) : i + 1]) / (i + 1 - max(0, i - window + 1))
        for i in range(len(train_loss))
    ]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    ax.plot(steps, train_loss, color="tab:blue", alpha=0.25, lw=0.8)
    ax.plot(steps, smooth, color="tab:blue", label=f"train loss ({window}-step mean)")
    ax.plot(
        history["eval_step"], history["heldout_loss"], "o-", color="tab:orange", label="held-out"
    )
    ax.axhline(chance, color="gray", ls="--", label=f"chance: ln(vocab) = {chance:.2f}")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_title("tiny-gpt2 pre-training on Python stdlib docstrings (CPU, fp32)")
    ax.set_ylim(0, chance + 1)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def sample_generations(model, tokenizer, prompt: str, max_new_tokens: int = 30) -> dict:
    """Continuations of ``prompt``: greedy, greedy without repeated 3-grams, and sampled
    (top-k 40, temperature 0.8, seeded)."""
    model.eval()
    inputs = tokenizer(prompt, return_tensors="pt")
    settings = {
        "greedy": {"do_sample": False},
        "greedy_no_repeat_ngram_size_3": {"do_sample": False, "no_repeat_ngram_size": 3},
        "sampled_top_k_40_temperature_0.8_seed_0": {
            "do_sample": True,
            "top_k": 40,
            "temperature": 0.8,
        },
    }
    samples = {"prompt": prompt}
    for name, kwargs in settings.items():
        torch.manual_seed(0)
        with torch.no_grad():
            out = model.generate(**inputs, max_new_tokens=max_new_tokens, **kwargs)
        samples[name] = tokenizer.decode(out[0], skip_special_tokens=True)
    return samples


def folder_bytes(path: pathlib.Path) -> int:
    return sum(p.stat().st_size for p in path.iterdir() if p.is_file())


# ---------------------------------------------------------------------------------- main


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--extract-corpus", action="store_true", help="re-extract data/corpus first")
    p.add_argument("--corpus-only", action="store_true", help="stop after the corpus step")
    p.add_argument("--corpus-dir", type=pathlib.Path, default=REPO_ROOT / "data" / "corpus")
    p.add_argument("--out", type=pathlib.Path, default=REPO_ROOT / "data" / "models" / "tiny-gpt2")
    p.add_argument("--vocab-size", type=int, default=4096)
    p.add_argument("--n-layer", type=int, default=4)
    p.add_argument("--n-head", type=int, default=4)
    p.add_argument("--n-embd", type=int, default=128)
    p.add_argument("--seq-len", type=int, default=256, help="also the model's n_positions")
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--steps", type=int, default=1200)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--warmup-fraction", type=float, default=0.08)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--eval-batches", type=int, default=None, help="default: whole held-out split")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--prompt", default="Return the number of")
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    started, cpu_started = time.perf_counter(), time.process_time()
    load_at_start = os.getloadavg()[0]
    if args.extract_corpus:
        write_corpus(args.corpus_dir)
    if args.corpus_only:
        return
    os.environ["COURSE_DATA_DIR"] = str(args.corpus_dir.resolve().parent)
    from transformers import set_seed

    from course_utils.data import corpus_documents, heldout_loss

    torch.set_num_threads(args.threads)
    set_seed(args.seed)

    tokenizer = train_tokenizer(corpus_documents("train"), args.vocab_size, args.seq_len)
    model = make_model(args, tokenizer)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params:,} parameters, vocab {len(tokenizer)}")

    train_start = time.perf_counter()
    history = train(args, model, tokenizer)
    train_seconds = time.perf_counter() - train_start
    final_heldout = heldout_loss(model, tokenizer, batch_size=16, seq_len=args.seq_len)
    samples = sample_generations(model, tokenizer, args.prompt)

    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    model.save_pretrained(args.out, safe_serialization=True)
    tokenizer.save_pretrained(args.out)
    chance = math.log(len(tokenizer))
    plot_curve(history, chance, args.out / "training_curve.png")

    import transformers

    info = {
        "model": "tiny-gpt2",
        "architecture": "GPT2LMHeadModel",
        "parameters": n_params,
        "config": {k: getattr(model.config, k) for k in ("n_layer", "n_head", "n_embd")}
        | {"n_positions": model.config.n_positions, "vocab_size": model.config.vocab_size},
        "tokenizer": "byte-level BPE (tokenizers), <|endoftext|> = bos/eos/pad/unk",
        "vocab_size": len(tokenizer),
        "corpus": corpus_stats(args.corpus_dir),
        "training": {
            "steps": args.steps,
            "batch_size": args.batch_size,
            "seq_len": args.seq_len,
            "tokens_seen": args.steps * args.batch_size * args.seq_len,
            "optimizer": f"AdamW(betas=(0.9, 0.95), weight_decay={args.weight_decay})",
            "lr_schedule": f"linear warmup {args.warmup_fraction:.0%} to {args.lr}, cosine to 10%",
            "max_grad_norm": 1.0,
            "dropout": args.dropout,
            "dtype": "float32",
            "device": "cpu",
            "torch_threads": args.threads,
            "train_seconds": round(train_seconds, 1),
        },
        "first_train_loss": round(history["train_loss"][0], 4),
        "final_train_loss_mean_last_20": round(sum(history["train_loss"][-20:]) / 20, 4),
        "heldout_loss": round(final_heldout, 4),
        "heldout_perplexity": round(math.exp(final_heldout), 2),
        "chance_loss_ln_vocab": round(chance, 4),
        "heldout_curve": dict(
            zip(
                history["eval_step"],
                map(lambda x: round(x, 4), history["heldout_loss"]),
                strict=True,
            )
        ),
        "samples": samples,
        "seed": args.seed,
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "tokenizers": __import__("tokenizers").__version__,
        },
        "cpu": platform.processor() or platform.machine(),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python " + shlex.join([os.path.relpath(__file__, REPO_ROOT), *sys.argv[1:]]),
        "build_seconds": None,
        "folder_bytes": None,
    }
    info["build_seconds"] = round(time.perf_counter() - started, 1)
    info["build_cpu_seconds"] = round(time.process_time() - cpu_started, 1)
    info["load_average_1min"] = {"start": load_at_start, "end": os.getloadavg()[0]}
    (args.out / "build_info.json").write_text(json.dumps(info, indent=2) + "\n")
    info["folder_bytes"] = folder_bytes(args.out)
    (args.out / "build_info.json").write_text(json.dumps(info, indent=2) + "\n")
    print(f"held-out loss {final_heldout:.3f} (chance ln(V) = {chance:.3f})")
    print(f"samples: {json.dumps(samples, indent=2)}")
    print(f"saved {args.out} ({info['folder_bytes'] / 1e6:.1f} MB) in {info['build_seconds']} s")


if __name__ == "__main__":
    main()
