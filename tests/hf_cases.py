"""Tiny Hugging Face model folders, built offline, shared by the tests of HF checkpoints and text probe sets.

Each folder holds a random model of two layers of width 32 (GPT-2, a BERT
masked LM, a BERT sequence classifier of three labels) saved with
``save_pretrained``, and a word-level tokenizer trained on :data:`SENTENCES`
(BERT's with a [CLS] … [SEP] template). Nothing is downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path

SENTENCES = [
    "the cat sat on the mat",
    "a dog ran in the park",
    "the bird sang a song to the cat",
    "cats and dogs play in the sun",
    "a song of the park",
]
KINDS = ("gpt2", "bert_mlm", "bert_classifier")
NUM_LABELS = 3


def tokenizer(template: bool):
    """A word-level tokenizer over SENTENCES, special tokens first ([PAD] = 0); with ``template``, [CLS] x [SEP]."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    core.train_from_iterator(SENTENCES, trainers.WordLevelTrainer(special_tokens=specials))
    if template:
        core.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
        )
    return PreTrainedTokenizerFast(tokenizer_object=core, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]")


def make_folder(root: Path, kind: str) -> Path:
    """``root/kind``: a tiny random model of ``kind`` (one of KINDS) and its tokenizer, saved as save_pretrained does."""
    import torch
    import transformers

    folder = root / kind
    words = tokenizer(template=kind != "gpt2")
    vocab = len(words)
    torch.manual_seed(0)
    if kind == "gpt2":
        config = transformers.GPT2Config(vocab_size=vocab, n_positions=64, n_embd=32, n_layer=2, n_head=2,
                                         bos_token_id=None, eos_token_id=None)
        model = transformers.GPT2LMHeadModel(config)
    else:
        config = transformers.BertConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                         intermediate_size=64, max_position_embeddings=64, pad_token_id=0, initializer_range=0.2,
                                         num_labels=NUM_LABELS)
        model_class = transformers.BertForMaskedLM if kind == "bert_mlm" else transformers.BertForSequenceClassification
        model = model_class(config)
    model.save_pretrained(folder)
    words.save_pretrained(folder)
    return folder


def write_texts(root: Path) -> tuple[Path, Path]:
    """A text file (SENTENCES, four times over) and a JSON-lines file of records {"text", "label", "other"}."""
    text = root / "notes.txt"
    text.write_text("\n".join(SENTENCES * 4))
    records = root / "records.jsonl"
    rows = [{"text": line, "label": i % NUM_LABELS, "other": line.upper()} for i, line in enumerate(SENTENCES)]
    records.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    return text, records
