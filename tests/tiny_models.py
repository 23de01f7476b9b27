"""Shared test fixtures: a tiny random GPT-2 that trains in milliseconds on one thread."""

import torch
from transformers import GPT2Config, GPT2LMHeadModel


def tiny_gpt2(seed: int = 0, *, vocab_size: int = 128, n_positions: int = 32) -> GPT2LMHeadModel:
    """A 2-layer, 32-wide GPT-2 without dropout, seeded (so the same seed gives the same weights)."""
    torch.manual_seed(seed)
    config = GPT2Config(
        n_layer=2, n_embd=32, n_head=2, vocab_size=vocab_size, n_positions=n_positions,
        bos_token_id=0, eos_token_id=0, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
    )  # fmt: skip
    model = GPT2LMHeadModel(config)
    model.loss_type = "ForCausalLM"  # GPT2LMHeadModel's class name names no loss family
    return model
