"""What the torchrun workers (``ddp``, ``fsdp``, ``with_accelerate`` in this package) share:
start the process group, build a model, cut the global batch into per-rank pieces, print with the
rank in front, write each rank's results.

Taught in notebook 08 (every run of sections 1-4 goes through it). The workers run under
``torchrun`` (``course_utils.distributed.launch`` starts it from a notebook or a test): one
process per rank, NCCL between GPUs, gloo between CPU processes.
"""

from __future__ import annotations

import os
import pathlib
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from course_utils.atomic import write_json_atomic

RESULT_DIR_ENV = "COURSE_DIST_OUT"
MODELS = ("toy", "mini", "tiny-gpt2")


@dataclass(frozen=True)
class Context:
    """This process's place in the job."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str

    def log(self, message: str) -> None:
        """Print one line, prefixed with the rank (each rank's output is collected apart)."""
        print(f"[rank {self.rank}/{self.world_size}] {message}", flush=True)


def init() -> Context:
    """Join the job torchrun started: NCCL when there is a GPU for every local rank, else
    gloo on the CPU (e.g. two ranks on a one-GPU machine)."""
    if "RANK" not in os.environ:
        raise RuntimeError(
            "this is a torchrun worker: start it with "
            "`torchrun --standalone --nproc_per_node=2 -m course_utils.distributed.<worker>` or "
            "course_utils.distributed.launch('<worker>') (workers: ddp, fsdp, with_accelerate)"
        )
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
    # One GPU per rank, or none: every rank must pick the same backend.
    if torch.cuda.is_available() and torch.cuda.device_count() >= local_world:
        device, backend = torch.device("cuda", local_rank), "nccl"
        torch.cuda.set_device(device)
    else:
        device, backend = torch.device("cpu"), "gloo"
    dist.init_process_group(backend)
    return Context(dist.get_rank(), dist.get_world_size(), local_rank, device, backend)


def finish() -> None:
    """Leave the job together: a barrier first, so no rank tears gloo down while another is still
    talking to it (that race aborts the late rank with "terminate called without an active
    exception")."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def write_result(ctx: Context, result: dict[str, Any]) -> None:
    """Save this rank's results as ``rank<N>.json`` in ``$COURSE_DIST_OUT`` (if set), atomically:
    a failed write (a full disk) leaves the previous file whole."""
    folder = os.environ.get(RESULT_DIR_ENV)
    if not folder:
        return
    path = pathlib.Path(folder) / f"rank{ctx.rank}.json"
    payload = {"rank": ctx.rank, "world_size": ctx.world_size, "backend": ctx.backend, **result}
    write_json_atomic(path, payload, indent=1, default=str)


# ------------------------------------------------------------------------------------- models
class ToyLM(nn.Module):
    """A small pre-norm causal Transformer LM built from ``torch.nn`` only (fast to import).
    ``model(input_ids=..., labels=...)`` returns an object with ``.loss``, like Hugging Face."""

    def __init__(self, vocab_size: int = 256, dim: int = 64, layers: int = 2, heads: int = 4):
        super().__init__()
        self.config = SimpleNamespace(vocab_size=vocab_size, n_positions=512)
        self.embed = nn.Embedding(vocab_size, dim)
        self.pos = nn.Embedding(512, dim)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(
                dim, heads, 4 * dim, dropout=0.0, batch_first=True, norm_first=True
            )
            for _ in range(layers)
        )
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab_size, bias=False)

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor | None = None, **_: Any):
        seq_len = input_ids.shape[1]
        positions = torch.arange(seq_len, device=input_ids.device)
        x = self.embed(input_ids) + self.pos(positions)
        mask = nn.Transformer.generate_square_subsequent_mask(seq_len, device=input_ids.device)
        for block in self.blocks:
            x = block(x, src_mask=mask.to(x.dtype), is_causal=True)
        logits = self.head(self.norm(x))
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(
                logits[:, :-1].float().reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1)
            )
        return SimpleNamespace(loss=loss, logits=logits)


def build_model(name: str, seed: int = 0) -> nn.Module:
    """ "toy" (torch only), "mini" (a GPT-2 shape from ``course_utils.bench.train_step``), or
    "tiny-gpt2" (the course's shipped model), in fp32 on the CPU, same weights on every rank for
    the same seed."""
    torch.manual_seed(seed)
    if name == "toy":
        return ToyLM()
    if name == "mini":
        from course_utils.bench.train_step import build_model as build_gpt2

        return build_gpt2("mini", seed=seed)
    if name == "tiny-gpt2":
        from course_utils.models import load_model_and_tokenizer

        model, _ = load_model_and_tokenizer("tiny-gpt2")
        model.train()
        return model
    raise ValueError(f"unknown model {name!r}: choose one of {', '.join(MODELS)}")


def first_layer_norm(module: nn.Module) -> nn.LayerNorm:
    """The first ``nn.LayerNorm`` inside ``module`` (GPT-2's ``ln_1``, the toy's ``norm1``): the
    workers hook it to show in which dtype a layer norm runs under autocast and under FSDP2."""
    for sub in module.modules():
        if isinstance(sub, nn.LayerNorm):
            return sub
    raise TypeError(f"no nn.LayerNorm inside {type(module).__name__}")


def blocks_of(model: nn.Module) -> list[nn.Module]:
    """The repeated blocks (what FSDP shards one by one): GPT-2's ``transformer.h`` or the toy's
    ``blocks``."""
    transformer = getattr(model, "transformer", None)
    if transformer is not None and hasattr(transformer, "h"):
        return list(transformer.h)
    if hasattr(model, "blocks"):
        return list(model.blocks)
    raise TypeError(f"do not know the blocks of {type(model).__name__}")


# --------------------------------------------------------------------------------------- data
PATTERN_TOKENS = 64  # the tiny language below uses the first 64 token ids


def global_batch(vocab_size: int, world_size: int, batch_size: int, seq_len: int, step: int):
    """The whole step's batch (``world_size * batch_size`` rows), the same on every rank, and a
    fresh one for every ``step`` (``step=0`` is kept for a held-out batch).

    The data is a tiny language a model can learn, so "the loss went down" can be checked on
    held-out data: every row counts upward from its own random start, modulo 64
    (``17, 18, ..., 63, 0, 1, ...``). Training rows (``step >= 1``) start at even numbers and
    held-out rows (``step=0``) at odd ones, so no held-out row is ever a training row (with only
    64 possible rows, random starts would repeat them). A model that learns the rule predicts the
    next token exactly; an untrained one sees about ``log(vocab_size)``; one that knows only
    which 64 tokens occur, ``log(64)``."""
    if vocab_size < PATTERN_TOKENS:
        raise ValueError(f"vocab_size must be at least {PATTERN_TOKENS}, got {vocab_size}")
    generator = torch.Generator().manual_seed(1000 + step)
    half = torch.randint(0, PATTERN_TOKENS // 2, (world_size * batch_size, 1), generator=generator)
    starts = 2 * half + (1 if step == 0 else 0)  # held-out rows: odd starts; training: even
    ids = (starts + torch.arange(seq_len)) % PATTERN_TOKENS
    return {"input_ids": ids, "labels": ids}


def rank_batch(ctx: Context, vocab_size: int, batch_size: int, seq_len: int, step: int):
    """This rank's slice of the step's global batch, on its device."""
    full = global_batch(vocab_size, ctx.world_size, batch_size, seq_len, step)
    rows = slice(ctx.rank * batch_size, (ctx.rank + 1) * batch_size)
    return {k: v[rows].to(ctx.device) for k, v in full.items()}


# ---------------------------------------------------------------------------------- gradients
def flat_grads(model: nn.Module) -> torch.Tensor:
    """All gradients as one fp32 CPU vector (FSDP's sharded DTensor gradients are gathered:
    every rank must call this)."""
    parts = []
    for p in model.parameters():
        g = p.grad
        if g is None:
            continue
        if hasattr(g, "full_tensor"):
            g = g.full_tensor()
        parts.append(g.detach().float().reshape(-1).cpu())
    return torch.cat(parts)


def param_checksum(model: nn.Module) -> float:
    """Sum of every (gathered) weight, in float64: equal on all ranks iff the weights are."""
    total = 0.0
    for p in model.parameters():
        t = p.full_tensor() if hasattr(p, "full_tensor") else p
        total += t.detach().double().sum().item()
    return total


def same_on_all_ranks(value: float) -> bool:
    """True if every rank passed the same number."""
    values = [None] * dist.get_world_size()
    dist.all_gather_object(values, value)
    return all(v == values[0] for v in values)


def relative_error(approx: torch.Tensor, exact: torch.Tensor) -> float:
    """||approx - exact|| / ||exact|| (L2 over all elements)."""
    return ((approx - exact).norm() / exact.norm()).item()
