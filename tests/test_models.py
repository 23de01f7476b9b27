"""course_utils.models: the shipped tiny GPT-2 loads offline, is trained, and speaks English."""

import json
import math
import re
import socket

import pytest
import torch

from course_utils import data, models

# Common English words; a trained model's greedy continuation uses several of them, while an
# untrained one emits repeated sub-word fragments.
ENGLISH_WORDS = set(
    """the of a an to is are be in for if it its this that with and or not on as by from
    return returns value values number object objects file files name names string list
    new default given when which will can used use data type method class function should
    set get first each all any one none true false module call called argument arguments
    """.split()
)


@pytest.fixture(scope="module")
def loaded():
    return models.load_model_and_tokenizer()


@pytest.fixture(scope="module")
def build_info():
    return json.loads((models.model_path("tiny-gpt2") / "build_info.json").read_text())


def test_loads_offline_like_a_hub_model(loaded):
    model, tokenizer = loaded
    assert "tiny-gpt2" in models.SHIPPED_MODELS and "tiny-gpt2" in models.shipped_models()
    assert model.config.model_type == "gpt2" and type(model).__name__ == "GPT2LMHeadModel"
    assert next(model.parameters()).dtype is torch.float32
    assert next(model.parameters()).device.type == "cpu"
    assert not model.training  # as from_pretrained returns it
    assert tokenizer.pad_token == tokenizer.eos_token == "<|endoftext|>"
    assert tokenizer.pad_token_id == model.config.pad_token_id
    text = "Return a new list of the values, in sorted order."
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text


def test_shipped_folder_is_small_and_safetensors_only():
    folder = models.model_path()
    files = {p.name for p in folder.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "build_info.json"} <= files
    assert "training_curve.png" in files
    assert not any(name.endswith((".bin", ".pt", ".pth", ".pkl")) for name in files)
    assert sum(p.stat().st_size for p in folder.iterdir()) < 20 * 2**20


def test_parameter_count_in_the_stated_range(loaded, build_info):
    model, tokenizer = loaded
    n = models.count_parameters(model)
    assert 1_000_000 < n < 10_000_000
    assert n == build_info["parameters"]
    assert len(tokenizer) == model.config.vocab_size == build_info["vocab_size"]
    assert 4096 <= len(tokenizer) <= 8192


def test_model_is_trained_far_below_chance(loaded, build_info):
    model, tokenizer = loaded
    chance = math.log(len(tokenizer))
    loss = data.heldout_loss(model, tokenizer, batch_size=8, seq_len=256, num_batches=3)
    assert loss < 0.6 * chance, (loss, chance)
    assert build_info["heldout_loss"] < 0.6 * build_info["chance_loss_ln_vocab"]


def english_words_in_greedy_continuation(model, tokenizer, prompt="Return the number of"):
    inputs = tokenizer(prompt, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=24, do_sample=False)
    continuation = tokenizer.decode(out[0, inputs["input_ids"].shape[1] :])
    return set(re.findall(r"[a-z]+", continuation.lower())) & ENGLISH_WORDS, continuation


def test_greedy_generation_has_english_words(loaded):
    words, continuation = english_words_in_greedy_continuation(*loaded)
    assert len(words) >= 2, continuation


def test_an_untrained_twin_fails_both_checks(loaded):
    """The checks above can fail: the same architecture freshly initialised sits at chance
    and continues the prompt with sub-word debris."""
    from transformers import AutoModelForCausalLM

    model, tokenizer = loaded
    torch.manual_seed(0)
    untrained = AutoModelForCausalLM.from_config(model.config)
    untrained.loss_type = "ForCausalLM"
    untrained.generation_config = model.generation_config
    loss = data.heldout_loss(untrained, tokenizer, batch_size=8, seq_len=256, num_batches=3)
    assert loss > 0.9 * math.log(len(tokenizer))
    words, continuation = english_words_in_greedy_continuation(untrained, tokenizer)
    assert len(words) < 2, continuation


def test_dtype_argument_gives_bf16_weights():
    model, tokenizer = models.load_model_and_tokenizer(dtype="bf16")
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    with torch.no_grad():
        logits = model(**tokenizer("The value of", return_tensors="pt")).logits
    assert logits.dtype is torch.bfloat16 and bool(torch.isfinite(logits).all())
    model16, _ = models.load_model_and_tokenizer(dtype=torch.float16, device="cpu")
    assert next(model16.parameters()).dtype is torch.float16


@pytest.mark.parametrize("dtype", ["int8", "half precision", torch.int32, 16])
def test_bad_dtype_is_a_clear_error(dtype):
    with pytest.raises(ValueError, match="dtype"):
        models.load_model_and_tokenizer(dtype=dtype)


def test_unknown_name_offline_lists_shipped_models_without_network(monkeypatch):
    attempts = []

    def no_network(*args, **kwargs):
        attempts.append(args)
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    with pytest.raises(models.ModelNotAvailableError) as info:
        models.load_model_and_tokenizer("no-such-course-model-xyz")
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert "'tiny-gpt2'" in message and "HF_HUB_OFFLINE" in message and "internet" in message
    assert attempts == []


def test_model_path_and_bad_names():
    assert (models.model_path("tiny-gpt2") / "config.json").is_file()
    with pytest.raises(models.ModelNotAvailableError, match="shipped models: 'tiny-gpt2'"):
        models.model_path("gpt2")
    with pytest.raises(TypeError, match="non-empty string"):
        models.load_model_and_tokenizer("")
    with pytest.raises(TypeError, match="non-empty string"):
        models.model_path(None)


def test_count_parameters_trainable_only(loaded):
    model, _ = loaded
    wte = model.transformer.wte.weight
    wte.requires_grad_(False)
    try:
        assert models.count_parameters(model, trainable_only=True) == (
            models.count_parameters(model) - wte.numel()
        )
    finally:
        wte.requires_grad_(True)
    with pytest.raises(TypeError, match="torch.nn.Module"):
        models.count_parameters("gpt2")


def test_course_data_dir_override(tmp_path, monkeypatch):
    (tmp_path / "models" / "my-model").mkdir(parents=True)
    (tmp_path / "models" / "my-model" / "config.json").write_text("{}")
    (tmp_path / "models" / "not-a-model").mkdir()
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    assert models.shipped_models() == ["my-model"]
    assert models.model_path("my-model") == tmp_path / "models" / "my-model"


def test_bf16_checkpoint_loads_bf16_by_default_and_fp32_on_request(loaded, tmp_path):
    """transformers 5 loads with dtype="auto": the checkpoint's dtype, not fp32."""
    model, tokenizer = loaded
    folder = models.save_pretrained_as(model, tokenizer, tmp_path / "bf16", "bf16")
    assert {p.dtype for p in model.parameters()} == {torch.float32}  # the original is untouched
    assert (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()
    assert not any(p.suffix in {".bin", ".pt"} for p in folder.iterdir())
    assert models.checkpoint_dtype(folder) is torch.bfloat16
    assert models.checkpoint_dtype(models.model_path()) is torch.float32
    default, _ = models.load_model_and_tokenizer(str(folder))
    assert {p.dtype for p in default.parameters()} == {torch.bfloat16}
    fp32, _ = models.load_model_and_tokenizer(str(folder), dtype=torch.float32)
    assert {p.dtype for p in fp32.parameters()} == {torch.float32}
    # the fp32 load holds the bf16-rounded values, exactly
    w = model.transformer.h[0].attn.c_attn.weight
    assert torch.equal(fp32.transformer.h[0].attn.c_attn.weight, w.bfloat16().float())


def test_checkpoint_dtype_falls_back_to_the_weights(loaded, tmp_path):
    model, _ = loaded
    folder = models.save_pretrained_as(model, None, tmp_path / "fp16", torch.float16)
    config = json.loads((folder / "config.json").read_text())
    config.pop("dtype", None)
    config.pop("torch_dtype", None)
    (folder / "config.json").write_text(json.dumps(config))
    assert models.checkpoint_dtype(folder) is torch.float16  # from the safetensors header
    (folder / "model.safetensors").unlink()
    assert models.checkpoint_dtype(folder) is None


def test_save_and_read_bad_input_is_a_clear_error(loaded, tmp_path):
    model, tokenizer = loaded
    with pytest.raises(TypeError, match="PreTrainedModel"):
        models.save_pretrained_as(torch.nn.Linear(2, 2), None, tmp_path, "bf16")
    with pytest.raises(ValueError, match="dtype is required"):
        models.save_pretrained_as(model, tokenizer, tmp_path, None)
    with pytest.raises(ValueError, match="unknown dtype"):
        models.save_pretrained_as(model, tokenizer, tmp_path, "int4")
    with pytest.raises(TypeError, match="path"):
        models.save_pretrained_as(model, tokenizer, 42, "bf16")
    with pytest.raises(FileNotFoundError, match="config.json"):
        models.checkpoint_dtype(tmp_path / "nothing-here")
    with pytest.raises(TypeError, match="path"):
        models.checkpoint_dtype(None)
