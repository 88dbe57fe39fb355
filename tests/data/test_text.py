"""Token probe sets: random ids, text files and JSON lines, tokenised as the model's own tokenizer does."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers", reason="the Hugging Face extra (pip install 'landscape_probe[hf]') is not installed")

from hf_cases import NUM_LABELS, SENTENCES, make_folder, write_texts  # noqa: E402

from landscape_probe.data.datasets import load_dataset, load_dataset_spec, parse_data_spec  # noqa: E402
from landscape_probe.data.text import IGNORED  # noqa: E402
from landscape_probe.errors import ProbeError  # noqa: E402


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("text")
    folders = {kind: make_folder(root, kind) for kind in ("gpt2", "bert_mlm", "bert_classifier")}
    folders["text"], folders["records"] = write_texts(root)
    return folders


def _tokenizer(folder: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)


def test_specs_read_the_file_first_like_images() -> None:
    assert parse_data_spec("text:notes.txt,seq_len=16") == ("text", {"path": "notes.txt", "seq_len": 16})
    assert parse_data_spec("jsonl:r.jsonl,field=body") == ("jsonl", {"path": "r.jsonl", "field": "body"})


def test_a_text_file_gives_the_tokenizers_own_ids_in_blocks(made: dict[str, Path]) -> None:
    data = load_dataset("text", path=str(made["text"]), model=str(made["gpt2"]), seq_len=8)
    direct = _tokenizer(made["gpt2"])(made["text"].read_text())["input_ids"]
    assert data.x_train.shape == (len(direct) // 8, 8)
    assert data.x_train.flatten().tolist() == direct[: data.x_train.numel()]
    assert torch.equal(data.y_train[:, :-1], data.x_train[:, 1:]) and bool((data.y_train[:, -1] == IGNORED).all())


def test_special_tokens_wrap_every_block_of_a_bert_text(made: dict[str, Path]) -> None:
    tokenizer = _tokenizer(made["bert_mlm"])
    data = load_dataset("text", path=str(made["text"]), model=str(made["bert_mlm"]), seq_len=8)
    plain = tokenizer(made["text"].read_text(), add_special_tokens=False)["input_ids"]
    masked = data.x_train == tokenizer.mask_token_id
    original = torch.where(masked, data.y_train, data.x_train)  # the text before masking
    assert (original[:, 0] == tokenizer.cls_token_id).all() and (original[:, -1] == tokenizer.sep_token_id).all()
    assert original[:, 1:-1].flatten().tolist() == plain[: original[:, 1:-1].numel()]


def test_the_mask_is_seeded_and_takes_fifteen_percent_of_ordinary_tokens(made: dict[str, Path]) -> None:
    tokenizer = _tokenizer(made["bert_mlm"])
    spec = dict(path=str(made["text"]), model=str(made["bert_mlm"]), seq_len=32)
    first, again, other = (load_dataset("text", seed=seed, **spec) for seed in (0, 0, 1))
    assert torch.equal(first.x_train, again.x_train) and not torch.equal(first.x_train, other.x_train)
    masked = first.x_train == tokenizer.mask_token_id
    assert torch.equal(masked, first.y_train != IGNORED)
    assert masked.any(dim=1).all()  # at least one target per sequence
    assert not bool(torch.isin(first.y_train[masked], torch.tensor(tokenizer.all_special_ids)).any())
    ordinary = first.x_train.numel() - 2 * len(first.x_train)  # all but [CLS] and [SEP]
    assert 0.08 < int(masked.sum()) / ordinary < 0.25
    assert first.spec["seed"] == 0 and first.spec["mask_fraction"] == 0.15
    assert torch.equal(load_dataset_spec(first.spec).x_train, first.x_train)  # the recorded spec reloads it


def test_a_jsonl_field_and_its_labels(made: dict[str, Path]) -> None:
    tokenizer = _tokenizer(made["bert_classifier"])
    data = load_dataset("jsonl", path=str(made["records"]), model=str(made["bert_classifier"]), field="text")
    assert data.task == "classification" and data.num_classes == NUM_LABELS
    assert data.y_train.tolist() == [i % NUM_LABELS for i in range(len(SENTENCES))]
    for row, sentence in zip(data.x_train.tolist(), SENTENCES):
        ids = tokenizer(sentence)["input_ids"]
        assert row == ids + [tokenizer.pad_token_id] * (len(row) - len(ids))
    short = load_dataset("jsonl", path=str(made["records"]), model=str(made["bert_classifier"]), seq_len=4)
    assert short.x_train.tolist() == [tokenizer(s, truncation=True, max_length=4)["input_ids"] for s in SENTENCES]
    other = load_dataset("jsonl", path=str(made["records"]), model=str(made["bert_classifier"]), field="other")
    assert not torch.equal(other.x_train, data.x_train)  # upper-case words: another field, other ids


def test_random_token_ids_are_seeded_within_the_vocabulary(made: dict[str, Path]) -> None:
    tokenizer = _tokenizer(made["bert_mlm"])
    first = load_dataset("tokens", model=str(made["gpt2"]), n=16, seq_len=12)
    assert first.x_train.shape == (16, 12) and "seeded random" in first.name
    assert torch.equal(first.x_train, load_dataset("tokens", model=str(made["gpt2"]), n=16, seq_len=12).x_train)
    assert int(first.x_train.min()) >= 0 and int(first.x_train.max()) < len(tokenizer)
    classes = load_dataset("tokens", model=str(made["bert_classifier"]), n=16, seq_len=12)
    assert classes.task == "classification" and int(classes.y_train.max()) < NUM_LABELS


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"field": "missing"}, "no text under 'missing'"),
        ({"label": "other"}, "no label under 'other'"),
    ],
)
def test_bad_records_give_one_sentence(made: dict[str, Path], spec: dict, message: str) -> None:
    with pytest.raises(ProbeError, match=message) as info:
        load_dataset("jsonl", path=str(made["records"]), model=str(made["bert_classifier"]), **spec)
    assert "\n" not in str(info.value)


def test_text_without_a_model_folder_is_one_sentence(made: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ProbeError, match="model=FOLDER"):
        load_dataset("text", path=str(made["text"]))
    (tmp_path / "bad.jsonl").write_text('{"text": "the cat"}\nnot json\n')
    with pytest.raises(ProbeError, match="Line 2 of"):
        load_dataset("jsonl", path=str(tmp_path / "bad.jsonl"), model=str(made["gpt2"]))
