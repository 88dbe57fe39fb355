"""Hugging Face save_pretrained folders: loaded offline, measured with the model's own loss, refused in one sentence."""

from __future__ import annotations

import builtins
import pickle
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers", reason="the Hugging Face extra (pip install 'landscape_probe[hf]') is not installed")

from cli_outcomes import one_sentence_exit_2  # noqa: E402
from hf_cases import KINDS, make_folder, write_texts  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

import landscape_probe as lp  # noqa: E402
from landscape_probe.checkpoints.load import load_checkpoint  # noqa: E402
from landscape_probe.cli import app  # noqa: E402
from landscape_probe.data.inputs import dataset_for  # noqa: E402
from landscape_probe.errors import ProbeError  # noqa: E402
from landscape_probe.models.groups import layer_groups  # noqa: E402
from landscape_probe.params import select_layers  # noqa: E402

runner = CliRunner()
FAST = dict(scales=(0.01, 0.1), power_iterations=2, device="cpu")


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hf")
    made = {kind: make_folder(root, kind) for kind in KINDS}
    made["text"], made["records"] = write_texts(root)
    return made


def _own_loss(model: torch.nn.Module, kind: str, x: torch.Tensor, y: torch.Tensor) -> float:
    """The loss transformers computes itself: a causal LM takes its inputs as labels and shifts them."""
    labels = torch.where(torch.cat([torch.ones_like(x[:, :1], dtype=torch.bool), y[:, :-1] != -100], 1), x, -100) \
        if kind == "gpt2" else y
    mask = (x != 0).long() if kind != "gpt2" else None  # [PAD] = 0: the padded records
    with torch.no_grad():
        return float(model(input_ids=x, attention_mask=mask, labels=labels).loss)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("data", [None, "records"])
def test_the_loss_at_t0_is_the_models_own_loss(folders: dict[str, Path], kind: str, data: str | None) -> None:
    """Random token ids (no data given) and padded JSON records: the probed loss is what the model's `loss` says."""
    spec = f"jsonl:{folders['records']}" if data else None
    result = lp.slice(folders[kind], spec, **FAST)
    loaded = load_checkpoint(folders[kind])
    dataset = dataset_for(spec, loaded)
    expected = _own_loss(loaded.model, kind, dataset.x_train, dataset.y_train)
    assert result.whole.loss_at_zero == pytest.approx(expected, rel=1e-5)
    assert result.loss_name == ("cross_entropy" if kind == "bert_classifier" else "token_cross_entropy")
    assert result.provenance["checkpoint_format"] == "hugging_face" and result.provenance["output_key"] == "logits"


def test_padding_is_masked_for_a_bidirectional_model(folders: dict[str, Path]) -> None:
    """Without the attention mask the padded records would give another loss: the mask is what matches."""
    loaded = load_checkpoint(folders["bert_classifier"])
    dataset = dataset_for(f"jsonl:{folders['records']}", loaded)
    x = dataset.x_train
    assert bool((x == 0).any())  # some records are padded
    with torch.no_grad():
        masked = loaded.model(input_ids=x, attention_mask=(x != 0).long()).logits
        hooked = loaded.model(x).logits
        loaded.model._forward_pre_hooks.clear()
        unmasked = loaded.model(x).logits
    assert torch.allclose(hooked, masked, rtol=0, atol=1e-6)
    assert not torch.allclose(unmasked, masked, rtol=0, atol=1e-4)


@pytest.mark.parametrize("kind", KINDS)
def test_block_groups_hold_every_perturbed_parameter_exactly_once(folders: dict[str, Path], kind: str) -> None:
    model = load_checkpoint(folders[kind]).model
    names = select_layers(model, include_1d=True)
    groups = layer_groups(model, names)
    members = [name for group in groups.values() for name in group]
    assert sorted(members) == sorted(names) == sorted(dict(model.named_parameters()))
    assert len(members) == len(set(members))
    blocks = [group for group in groups if group not in ("embeddings", "head")]
    assert len(blocks) == 4 and {group.rsplit(" ", 1)[1] for group in blocks} == {"attention", "mlp"}


def test_tied_embeddings_are_one_layer_perturbed_once(folders: dict[str, Path]) -> None:
    result = lp.slice(folders["gpt2"], layers=True, include_1d=True, **FAST)
    model = load_checkpoint(folders["gpt2"]).model
    assert model.lm_head.weight is model.transformer.wte.weight
    assert "transformer.wte.weight" in result.layer_names and "lm_head.weight" not in result.layer_names
    assert result.layers["embeddings"].layer_names == ["transformer.wte.weight", "transformer.wpe.weight"]
    assert sum(len(sweep.layer_names) for sweep in result.layers.values()) == len(result.layer_names)


def test_groups_survive_the_results_file(folders: dict[str, Path], tmp_path: Path) -> None:
    result = lp.slice(folders["bert_mlm"], layers=True, **FAST)
    result.save(tmp_path / "s.h5")
    again = lp.load(tmp_path / "s.h5")
    assert list(again.layers) == list(result.layers)
    assert {k: v.layer_names for k, v in again.layers.items()} == {k: v.layer_names for k, v in result.layers.items()}


def test_a_bin_file_loads_like_the_safetensors_one(folders: dict[str, Path], tmp_path: Path) -> None:
    from safetensors.torch import load_file

    folder = tmp_path / "bin"
    folder.mkdir()
    (folder / "config.json").write_bytes((folders["gpt2"] / "config.json").read_bytes())
    torch.save(load_file(str(folders["gpt2"] / "model.safetensors")), folder / "pytorch_model.bin")
    x = torch.arange(12).reshape(2, 6) % 10
    expected = load_checkpoint(folders["gpt2"]).model(x).logits
    assert torch.equal(load_checkpoint(folder).model(x).logits, expected)


class OpensForWriting:
    """Unpickling this object opens ``target`` for writing, creating it."""

    def __init__(self, target: Path) -> None:
        self.target = str(target)

    def __reduce__(self) -> tuple:
        return (builtins.open, (self.target, "w"))


def test_a_malicious_bin_is_refused_without_trust(folders: dict[str, Path], tmp_path: Path) -> None:
    folder, target = tmp_path / "evil", tmp_path / "created_by_payload"
    folder.mkdir()
    (folder / "config.json").write_bytes((folders["gpt2"] / "config.json").read_bytes())
    torch.save({"transformer.wte.weight": torch.zeros(2, 2), "hook": OpensForWriting(target)},
               folder / "pytorch_model.bin")
    for command in (["info", str(folder)], ["slice", str(folder), "-o", str(tmp_path / "o.h5"), "--no-plots"]):
        text = one_sentence_exit_2(runner.invoke(app, command))
        assert "--trust-checkpoint" in text
        assert not target.exists()
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps({"w": OpensForWriting(target)}, protocol=2))
    one_sentence_exit_2(runner.invoke(app, ["info", str(folder)]))
    assert not target.exists()


@pytest.mark.parametrize("broken", ["no config", "no weights", "bad shard index", "no tokenizer for text",
                                    "text for a classifier", "wrong config"])
def test_broken_folders_give_one_sentence(folders: dict[str, Path], tmp_path: Path, broken: str) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    source = folders["bert_classifier" if broken == "text for a classifier" else "gpt2"]
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        (folder / name).write_bytes((source / name).read_bytes())
    args = ["slice", str(folder), "-o", str(tmp_path / "o.h5"), "--no-plots", "--scales", "0.1"]
    if broken == "no config":
        (folder / "config.json").unlink()
    elif broken == "no weights":
        (folder / "model.safetensors").unlink()
    elif broken == "bad shard index":
        (folder / "model.safetensors").unlink()
        (folder / "model.safetensors.index.json").write_text('{"weight_map": {"a": "../elsewhere.safetensors"}}')
    elif broken in ("no tokenizer for text", "text for a classifier"):
        if broken == "no tokenizer for text":
            (folder / "tokenizer.json").unlink()
            (folder / "tokenizer_config.json").unlink()
        args += ["--data", f"text:{folders['text']}"]
    else:
        config = (folder / "config.json").read_text().replace('"n_embd": 32', '"n_embd": 48')
        (folder / "config.json").write_text(config)
    one_sentence_exit_2(runner.invoke(app, args))
    assert not (tmp_path / "o.h5").exists()


def test_without_transformers_a_folder_is_one_sentence(folders: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers now raises ImportError
    with pytest.raises(ProbeError, match=r"needs the transformers package.*landscape_probe\[hf\]"):
        load_checkpoint(folders["gpt2"])
    text = one_sentence_exit_2(runner.invoke(app, ["info", str(folders["gpt2"])]))
    assert "pip install" in text


def test_probe_info_and_hessian_read_a_folder(folders: dict[str, Path], tmp_path: Path) -> None:
    info = runner.invoke(app, ["info", str(folders["gpt2"])])
    assert info.exit_code == 0 and "hugging_face" in info.output and "GPT2LMHeadModel" in info.output
    result = lp.hessian(folders["bert_mlm"], f"text:{folders['text']},seq_len=8", top_k=1, trace_samples=10,
                        density_runs=1, device="cpu")
    assert result.loss_name == "token_cross_entropy" and len(result.eigenvalues) == 1
