"""course_utils.data: the shipped corpus, deterministic token batches, held-out loss."""

import pytest
import torch

from course_utils import data
from course_utils.models import load_model_and_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return load_model_and_tokenizer()[1]


@pytest.fixture(scope="module")
def model():
    return load_model_and_tokenizer()[0]


def test_corpus_splits_are_english_and_disjoint():
    train, heldout = data.load_corpus("train"), data.load_corpus("heldout")
    assert len(train) > 500_000 and len(heldout) > 20_000
    share = len(heldout) / (len(train) + len(heldout))
    assert 0.03 < share < 0.08, share  # about the last 5% of the documents
    assert " the " in train and " the " in heldout
    train_docs = set(data.corpus_documents("train"))
    heldout_docs = data.corpus_documents("heldout")
    assert heldout_docs and not train_docs.intersection(heldout_docs)


def test_unknown_split_is_a_clear_error(tokenizer):
    with pytest.raises(ValueError, match="unknown split 'test'.*train, heldout"):
        data.load_corpus("test")
    with pytest.raises(ValueError, match="unknown split"):
        data.token_batches(tokenizer, "validation")


def test_batches_have_the_right_shapes_and_come_from_the_split(tokenizer):
    ids = data.token_ids(tokenizer, "heldout")
    batches = list(data.token_batches(tokenizer, "heldout", 4, 64, seed=1, num_batches=3))
    assert len(batches) == 3
    for batch in batches:
        assert set(batch) == {"input_ids", "attention_mask", "labels"}
        assert batch["input_ids"].shape == (4, 64) and batch["input_ids"].dtype == torch.long
        assert torch.equal(batch["labels"], batch["input_ids"])
        assert bool((batch["attention_mask"] == 1).all())
        for row in batch["input_ids"]:  # every row is a contiguous window of the split
            starts = (ids[: len(ids) - 63] == row[0]).nonzero().flatten()
            assert any(torch.equal(ids[s : s + 64], row) for s in starts.tolist())


def test_batches_are_deterministic_for_a_seed(tokenizer):
    def take(seed):
        return [
            b["input_ids"]
            for b in data.token_batches(tokenizer, "heldout", 2, 32, seed=seed, num_batches=5)
        ]

    first, again, other = take(7), take(7), take(8)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))


def test_one_pass_covers_each_window_once_then_passes_repeat(tokenizer):
    n_tokens = len(data.token_ids(tokenizer, "heldout"))
    one_pass = list(data.token_batches(tokenizer, "heldout", 8, 128, seed=0))
    assert len(one_pass) == ((n_tokens - 128) // 128) // 8
    firsts = {tuple(row[:8].tolist()) for b in one_pass for row in b["input_ids"]}
    assert len(firsts) == len(one_pass) * 8  # no window twice in a pass
    more = list(
        data.token_batches(tokenizer, "heldout", 8, 128, seed=0, num_batches=len(one_pass) + 3)
    )
    assert len(more) == len(one_pass) + 3


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"batch_size": 0}, ValueError, "batch_size must be at least 1"),
        ({"batch_size": "8"}, TypeError, "batch_size must be an int"),
        ({"seq_len": 257}, ValueError, "longer than the model's context"),
        ({"seq_len": 1}, ValueError, "at least 2"),
        ({"num_batches": 0}, ValueError, "num_batches must be at least 1"),
        ({"seed": 1.5}, TypeError, "seed must be an int"),
        ({"batch_size": 4096, "seq_len": 256}, ValueError, "too small for one batch"),
    ],
)
def test_bad_batch_arguments_fail_at_the_call(tokenizer, kwargs, error, match):
    args = {"split": "heldout", "batch_size": 2, "seq_len": 16} | kwargs
    seed = args.pop("seed", 0)
    with pytest.raises(error, match=match):
        data.token_batches(tokenizer, **args, seed=seed)  # raises before any iteration


def test_tokenizer_without_eos_is_refused():
    class NoEos:
        eos_token_id = None

    with pytest.raises(ValueError, match="eos_token_id"):
        data.token_ids(NoEos(), "heldout")


def test_heldout_loss_is_deterministic_and_keeps_the_mode(model, tokenizer):
    model.train()
    first = data.heldout_loss(model, tokenizer, batch_size=4, seq_len=64, num_batches=2)
    assert model.training  # mode restored
    model.eval()
    again = data.heldout_loss(model, tokenizer, batch_size=4, seq_len=64, num_batches=2)
    assert not model.training
    assert first == again and 0 < first < 10
    with pytest.raises(ValueError, match="longer than the model's context"):
        data.heldout_loss(model, tokenizer, seq_len=512)


def test_data_dir_override(tmp_path, monkeypatch, tokenizer):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for split in data.SPLITS:
        text = "\n<|endoftext|>\n".join(f"Document {i} of the {split} split." for i in range(30))
        (corpus / f"{data.CORPUS_NAME}.{split}.txt").write_text(text)
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    assert data.data_dir() == tmp_path
    assert data.load_corpus("heldout").startswith("Document 0 of the heldout split.")
    assert len(data.corpus_documents("train")) == 30
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="COURSE_DATA_DIR"):
        data.data_dir()
