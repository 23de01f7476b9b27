"""Fine-tuning helpers: the shipped dataset, clear errors for bad input, configs, fp32 evaluation."""

import hashlib
import json
import pathlib
import platform
import subprocess
import sys

import pytest
import torch
from datasets import Dataset, DatasetDict

from course_utils import finetune
from course_utils.models import shipped_models

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]

needs_model = pytest.mark.skipif(
    "tiny-gpt2" not in shipped_models(), reason="the shipped tiny-gpt2 is missing"
)


# ------------------------------------------------------------------ the shipped dataset


def test_splits_are_real_question_answer_pairs_without_overlap():
    train = finetune.load_finetune_dataset("train", names=True)
    heldout = finetune.load_finetune_dataset("heldout", names=True)
    assert len(train) >= 300 and len(heldout) >= 50
    for row in [*train, *heldout]:
        assert row["text"].startswith("Question: What does ")
        question, answer = row["text"].split("\n")
        assert row["name"] in question and answer[:1].isupper() and answer.endswith((".", "!", "?"))
    assert not set(train["name"]) & set(heldout["name"])
    assert not set(train["text"]) & set(heldout["text"])


def test_build_info_matches_the_files():
    info = json.loads((finetune.finetune_dir() / "build_info.json").read_text())
    assert "PSF" in info["license"] and info["command"].startswith("python scripts/")
    for name, meta in info["files"].items():
        path = finetune.finetune_dir() / name
        assert hashlib.sha256(path.read_bytes()).hexdigest() == meta["sha256"]
        assert sum(1 for _ in path.open()) == meta["examples"]


def test_dataset_rebuilds_identically(tmp_path):
    info = json.loads((finetune.finetune_dir() / "build_info.json").read_text())
    if platform.python_version() != info["python"] or platform.system() != "Linux":
        pytest.skip(f"the docstrings come from CPython {info['python']} on Linux")
    corpus = REPO_ROOT / "data" / "corpus"
    for name, digest in info["pretraining_corpus_sha256"].items():
        if hashlib.sha256((corpus / name).read_bytes()).hexdigest() != digest:
            pytest.skip(f"data/corpus/{name} changed since the dataset was built (overlap filter)")
    subprocess.run(
        [sys.executable, "scripts/build_finetune_dataset.py", "--out", str(tmp_path)],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
    )
    for name in info["files"]:
        assert (tmp_path / name).read_bytes() == (finetune.finetune_dir() / name).read_bytes()


def test_load_options_and_bad_split():
    assert finetune.load_finetune_dataset("heldout", limit=3).column_names == ["text"]
    assert len(finetune.load_finetune_dataset("heldout", limit=3)) == 3
    with pytest.raises(ValueError, match="unknown split 'test'"):
        finetune.load_finetune_dataset("test")
    with pytest.raises(ValueError, match="limit"):
        finetune.load_finetune_dataset("train", limit=0)


def test_prompt_of():
    text = "Question: What does len(obj) do?\nReturn the number of items in a container."
    assert finetune.prompt_of(text) == "Question: What does len(obj) do?\n"
    with pytest.raises(ValueError, match="answer on the next line"):
        finetune.prompt_of("no answer here")


# ------------------------------------------------------------------ bad input, clear messages


def test_a_plain_list_gets_a_message_that_says_what_to_do():
    with pytest.raises(TypeError, match=r"plain list.*Dataset\.from_list"):
        finetune.check_sft_dataset([{"text": "hello"}])
    with pytest.raises(TypeError, match="datasets.Dataset"):
        finetune.check_sft_dataset(DatasetDict(train=Dataset.from_list([{"text": "a"}])))


def test_empty_dataset():
    with pytest.raises(ValueError, match="train_dataset is empty"):
        finetune.check_sft_dataset(Dataset.from_dict({"text": []}))


def test_dataset_without_a_text_field_lists_its_columns():
    data = Dataset.from_list([{"prompt": "Q", "answer": "A"}])
    with pytest.raises(KeyError, match=r"no 'text' field \(its columns: prompt, answer\)"):
        finetune.check_sft_dataset(data)
    assert finetune.check_sft_dataset(data, text_field="prompt") is data
    with pytest.raises(TypeError, match="not a string"):
        finetune.check_sft_dataset(Dataset.from_list([{"text": 3}]))


def test_bf16_and_fp16_together_is_refused_by_our_helper():
    with pytest.raises(ValueError, match="bf16=True and fp16=True together: choose one"):
        finetune.sft_config(bf16=True, fp16=True)
    with pytest.raises(ValueError, match="precision='bf16' but fp16=True"):
        finetune.sft_config("bf16", fp16=True)
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        finetune.sft_config("fp8")
    with pytest.raises(ValueError, match="steps must be a positive int"):
        finetune.sft_config(steps=0)


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_sft_config_states_its_precision_and_runs_on_this_device(precision):
    args = finetune.sft_config(precision, steps=3, device="cpu")
    assert (args.bf16, args.fp16) == (precision == "bf16", precision == "fp16")
    assert args.use_cpu and args.max_steps == 3 and args.max_length == finetune.DEFAULT_MAX_LENGTH
    assert args.activation_checkpointing is False and args.report_to == []
    assert args.dataset_text_field == "text"


def test_lora_config_is_the_tutorials_plus_fan_in_fan_out():
    config = finetune.lora_config()
    assert (config.r, config.lora_alpha) == (8, 16)
    assert set(config.target_modules) == {"c_attn", "c_proj"}
    assert config.fan_in_fan_out is True


def test_sft_trainer_checks_its_input_before_trl_does():
    args = finetune.sft_config("fp32", steps=1, device="cpu")
    with pytest.raises(TypeError, match="plain list"):
        finetune.sft_trainer(None, None, args, [{"text": "a"}])
    with pytest.raises(TypeError, match="trl.SFTConfig"):
        finetune.sft_trainer(None, None, object(), Dataset.from_list([{"text": "a"}]))
    with pytest.raises(ValueError, match="eval_dataset is empty"):
        finetune.sft_trainer(
            None,
            None,
            args,
            Dataset.from_list([{"text": "a"}]),
            eval_dataset=Dataset.from_dict({"text": []}),
        )


# ------------------------------------------------------------------ measuring a model


@needs_model
def test_text_loss_is_fp32_and_restores_16_bit_weights():
    from course_utils.models import load_model_and_tokenizer

    data = finetune.load_finetune_dataset("heldout", limit=6)
    model, tokenizer = load_model_and_tokenizer("tiny-gpt2")
    fp32_loss = finetune.text_loss(model, tokenizer, data, batch_size=4)
    assert 0 < fp32_loss < 20
    assert finetune.text_loss(model, tokenizer, data, batch_size=6) == pytest.approx(fp32_loss)
    model_bf16, _ = load_model_and_tokenizer("tiny-gpt2", dtype="bf16")
    before = {n: p.clone() for n, p in model_bf16.named_parameters()}
    loss_bf16_weights = finetune.text_loss(model_bf16, tokenizer, data)
    assert all(p.dtype is torch.bfloat16 for p in model_bf16.parameters())
    assert all(torch.equal(before[n], p) for n, p in model_bf16.named_parameters())
    # bf16-rounded weights, fp32 maths: close to, not equal to, the fp32 model
    assert loss_bf16_weights == pytest.approx(fp32_loss, rel=0.05)


@needs_model
def test_generate_answer_is_greedy_and_returns_only_the_continuation():
    from course_utils.models import load_model_and_tokenizer

    model, tokenizer = load_model_and_tokenizer("tiny-gpt2")
    prompt = "Question: What does len(obj) do?\n"
    first = finetune.generate_answer(model, tokenizer, prompt, max_new_tokens=8)
    assert first == finetune.generate_answer(model, tokenizer, prompt, max_new_tokens=8)
    assert not first.startswith("Question")


def test_outcome_and_available_precisions():
    assert finetune.outcome(lambda: None) == "works"
    assert finetune.outcome(lambda: int("x")).startswith("ValueError: invalid literal")
    assert finetune.available_precisions("cpu") == ("fp32", "bf16", "fp16")


# PEFT's get_peft_model reads a property transformers 5 deprecated: library noise (see sft_trainer).
@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")
def test_the_quiz_facts_hold_in_these_libraries(tmp_path):
    """Facts the notebook's quiz states, checked against the installed TRL, transformers, PEFT."""
    from peft import get_peft_model
    from transformers import GPT2Config, GPT2LMHeadModel
    from trl import SFTConfig

    plain = SFTConfig(output_dir=str(tmp_path), use_cpu=True, activation_checkpointing=False)
    assert plain.bf16 is True  # TRL's default when neither bf16 nor fp16 is given
    assert finetune.sft_config("fp16", device="cpu").mixed_precision == "fp16"  # the request
    with pytest.raises(TypeError, match="max_seq_length"):
        SFTConfig(output_dir=str(tmp_path), use_cpu=True, max_seq_length=128)
    gpt2_sized = GPT2LMHeadModel(
        GPT2Config(n_layer=1, n_embd=768, n_head=12, vocab_size=64, bos_token_id=0, eos_token_id=0)
    )
    peft_model = get_peft_model(gpt2_sized, finetune.lora_config(target_modules=("c_attn",)))
    lora = sum(p.numel() for n, p in peft_model.named_parameters() if "lora_" in n)
    assert lora == 8 * (768 + 2304) == 24576


def test_exercise_check_accepts_the_plan_and_explains_wrong_ones():
    from course_utils.exercises import evaluate

    right = {"precision": "fp16", "ran_on_gpu": "fp16 autocast + GradScaler", "ran_on_cpu": "fp32"}
    assert evaluate("05.precision_plan", right).passed
    assert evaluate("05.precision_plan", dict(right, ran_on_gpu=" FP16 autocast +  GradScaler"))
    wrong = {
        "precision": ("bf16", "Turing"),
        "ran_on_gpu": ("fp16 autocast", "loss scaler"),
        "ran_on_cpu": ("fp16 autocast + GradScaler", "fp16 run of this notebook"),
    }
    for key, (value, hint) in wrong.items():
        result = evaluate("05.precision_plan", dict(right, **{key: value}))
        assert not result.passed and hint in result.hint, key
    assert (
        "not something the audit says"
        in evaluate("05.precision_plan", dict(right, ran_on_cpu="fp8")).message
    )
    assert (
        "lacks ran_on_cpu"
        in evaluate("05.precision_plan", {"precision": "fp16", "ran_on_gpu": "x"}).message
    )
    assert not evaluate("05.precision_plan", ...).passed


# ------------------------------------------------------------------ runs: Trainer and course loop


def _run(label, steps, eval_loss, **extra):
    from course_utils.finetune.runs import RunResult

    fields = dict(
        label=label, precision="fp32", base_dtype="float32", model="tiny-gpt2", device="cpu",
        steps=steps, batch_size=4, max_length=64, learning_rate=5e-3,
        train_loss=[(s, 5.0) for s in range(1, steps + 1)], eval_loss=eval_loss,
        step_times_s=[0.1] * steps, saved_bytes=2**20, weight_bytes=2**21, trainable_params=10,
        cuda_peak_bytes=None, weight_dtypes={"trainable": {"float32": 10}, "frozen": {}},
        audit={"ran": label},
    )  # fmt: skip
    fields.update(extra)
    return RunResult(**fields)


def test_compare_puts_runs_of_different_lengths_side_by_side_at_a_shared_step():
    from course_utils.finetune.runs import common_eval_step, compare

    long = _run("fp32", 30, [(0, 5.5), (10, 4.0), (20, 3.5), (30, 3.2)])
    short = _run("bf16 weights (no autocast)", 10, [(0, 5.5), (10, 3.9)])
    assert common_eval_step([long, short]) == 10
    table = compare([long, short])
    header, _, first, second = table.splitlines()
    assert "steps" in header and "held-out 0 -> 10" in header
    assert first.rstrip().endswith("5.500 -> 4.000") and " 30 " in first
    assert second.rstrip().endswith("5.500 -> 3.900") and " 10 " in second
    with pytest.raises(ValueError, match="no held-out loss at step 30"):
        compare([long, short], at_step=30)
    with pytest.raises(ValueError, match="share no step"):
        common_eval_step([_run("a", 1, [(1, 1.0)]), _run("b", 2, [(2, 1.0)])])
    with pytest.raises(ValueError, match="no runs"):
        common_eval_step([])


def test_run_results_round_trip_with_the_loop_fields():
    import dataclasses

    from course_utils.finetune.runs import RunResult

    run = _run("fp16 autocast + GradScaler", 2, [(0, 5.0)], engine="course loop",
               loss_scales=[(1, 65536.0), (2, 32768.0)], skipped_steps=[1])  # fmt: skip
    data = json.loads(json.dumps(dataclasses.asdict(run)))
    assert RunResult.from_dict(data) == run
    old = {k: v for k, v in data.items() if k not in ("engine", "loss_scales", "skipped_steps")}
    assert RunResult.from_dict(old).engine == "Trainer"  # files written before these fields


def test_skipped_steps_are_read_from_the_scale():
    from course_utils.finetune.runs import skipped_by_scaler

    assert skipped_by_scaler([2.0**24, 2.0**23, 2.0**23, 2.0**22], 2.0**22) == [1, 3]
    assert skipped_by_scaler([65536.0, 65536.0], 32768.0) == [2]
    assert skipped_by_scaler([65536.0, 131072.0], 131072.0) == []  # growth is not a skip
    assert skipped_by_scaler([], 1.0) == []


def test_run_finetune_loop_rejects_bad_input_before_loading_anything():
    from course_utils.finetune.runs import run_finetune_loop

    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        run_finetune_loop("fp8")
    with pytest.raises(ValueError, match="init_scale must be finite and > 0"):
        run_finetune_loop("fp16", init_scale=0)
    with pytest.raises(TypeError, match="init_scale must be a number"):
        run_finetune_loop("fp16", init_scale="65536")
    with pytest.raises(ValueError, match="note must be a non-empty string"):
        run_finetune_loop("fp16", note="  ")
    with pytest.raises(ValueError, match="note must be a non-empty string"):
        run_finetune_loop("fp16", note=24)


def test_memory_plot_names_runs_by_the_audit_and_the_loop_when_loops_differ():
    from course_utils.finetune.runs import memory_labels, plot_memory

    trainer = _run("bf16 autocast", 2, [(0, 5.0)])
    loop = _run("fp16 autocast + GradScaler", 2, [(0, 5.0)], engine="course loop")
    assert memory_labels([trainer, trainer]) == ["bf16 autocast", "bf16 autocast"]
    labels = memory_labels([trainer, loop])
    assert labels[0].replace("\n", " ") == "bf16 autocast [Trainer]"
    assert labels[1].replace("\n", " ") == "fp16 autocast + GradScaler [course loop]"
    assert all(len(line) <= 18 for label in labels for line in label.splitlines())  # no overlap
    fig = plot_memory([trainer, loop])
    ticks = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert ticks == labels
    import matplotlib.pyplot as plt

    plt.close(fig)


@needs_model
@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")
@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU behaviour")
def test_the_course_loop_reproduces_the_trainer_and_runs_real_fp16_on_a_cpu(one_thread):
    from course_utils.finetune.runs import run_finetune, run_finetune_loop

    small = dict(
        steps=3,
        eval_every=3,
        train_dataset=finetune.load_finetune_dataset("train", limit=16),
        eval_dataset=finetune.load_finetune_dataset("heldout", limit=8),
    )
    trainer_fp32 = run_finetune("fp32", **small)
    trainer_fp16 = run_finetune("fp16", **small)  # fp16=True on a CPU: the Trainer runs fp32
    assert trainer_fp32.label == "fp32" and trainer_fp16.label == "fp32 (asked: fp16)"
    assert trainer_fp16.train_loss == trainer_fp32.train_loss

    loop_fp32 = run_finetune_loop("fp32", **small)
    assert loop_fp32.engine == "course loop" and loop_fp32.label == "fp32"
    for (_, ours), (_, theirs) in zip(loop_fp32.train_loss, trainer_fp32.train_loss, strict=True):
        assert ours == pytest.approx(theirs, abs=1e-3)

    fp16 = run_finetune_loop("fp16", note="from 2^16", **small)
    assert fp16.label == "fp16 autocast + GradScaler, from 2^16"  # the audit's name, then the note
    assert fp16.audit["scaler_steps"] == 3
    assert fp16.loss_scales == [(1, 65536.0), (2, 65536.0), (3, 65536.0)]
    assert fp16.skipped_steps == [] and fp16.eval_loss[-1][0] == 3
    assert fp16.train_loss[0][1] != trainer_fp32.train_loss[0][1]  # fp16 rounding shows
    assert fp16.train_loss[0][1] == pytest.approx(trainer_fp32.train_loss[0][1], abs=0.01)

    high = run_finetune_loop("fp16", init_scale=2.0**30, **dict(small, eval_every=0))
    assert high.skipped_steps == [1, 2, 3] and high.audit["skipped_steps"] == 3
    assert [scale for _, scale in high.loss_scales] == [2.0**30, 2.0**29, 2.0**28]
