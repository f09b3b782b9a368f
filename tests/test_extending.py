"""docs/extending.md stays true: its package map lists every module, and its worked examples of a
corpus format and a tokenizer run as written."""

import json
import re
from collections import Counter

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from helpers import ROOT
from seq2seq_nmt.data import corpus as corpus_module
from seq2seq_nmt.data import tokenizer as tokenizer_module
from seq2seq_nmt.data.datamodule import TranslationDataModule

DOC = (ROOT / "docs" / "extending.md").read_text(encoding="utf-8")
PACKAGE = ROOT / "src" / "seq2seq_nmt"


def section(heading: str) -> str:
    """The text of the ``## heading...`` section of the doc."""
    start = DOC.index(f"\n## {heading}")
    end = DOC.find("\n## ", start + 1)
    return DOC[start : end if end >= 0 else None]


def blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, re.S)


def test_the_package_map_lists_every_module():
    listed = set(re.findall(r"^\| `([\w/]+\.py)` \|", section("The package"), re.M))
    modules = {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")}
    assert modules - {m for m in modules if m.endswith("__init__.py")} - listed == set()


def run_example(module, heading: str) -> dict:
    """The doc's first Python block of ``heading`` run in ``module``'s namespace."""
    namespace = dict(vars(module), json=json)
    exec(blocks(section(heading), "python")[0], namespace)
    return namespace


def test_the_corpus_format_example_trains_through_the_cache(tmp_path, monkeypatch):
    example = run_example(corpus_module, "A corpus format")
    monkeypatch.setattr(corpus_module, "JsonLinesCorpus", example["JsonLinesCorpus"], raising=False)
    rows = [{"en": f"I am {a} {i}.", "fr": f"Je suis {a} {i}."} for a in ("tired", "late") for i in range(30)]  # fmt: skip
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    cfg = OmegaConf.create(blocks(section("A corpus format"), "yaml")[0])
    cfg.corpus.path, cfg.corpus.langs = str(path), ["fr", "en"]
    corpus = instantiate(cfg.corpus)
    assert next(corpus.pairs(Counter())) == ("Je suis tired 0.", "I am tired 0.")
    dm = TranslationDataModule(corpus, max_length=None, val_size=6, test_size=6, cache_dir=tmp_path / "cache")  # fmt: skip
    dm.setup()
    assert dm.cache_key is not None and sum(map(len, dm.datasets.values())) == len(rows)


def test_the_tokenizer_example_round_trips_and_is_registered(tmp_path, monkeypatch):
    example = run_example(tokenizer_module, "A tokenizer")
    monkeypatch.setitem(tokenizer_module.TOKENIZERS, "chars", example["CharTokenizer"])
    lines = ["je suis prêt .", "il est là ."]
    trainer = example["Chars"]()
    src, _ = trainer.train(lambda: iter(lines), lambda: iter(lines), (1, 1), (None, None))
    ids = src.encode_batch(lines[:1])[0]
    assert src.decode(ids) == lines[0] and len(ids) == len(lines[0]) + 1  # a char each, EOS
    torch.save(src.to_dict(), tmp_path / "tok.pt")
    again = tokenizer_module.from_dict(torch.load(tmp_path / "tok.pt", weights_only=True))
    assert type(again).__name__ == "CharTokenizer" and again.encode_batch(lines) == src.encode_batch(lines)  # fmt: skip
    assert trainer.settings() == {"kind": "chars"} and trainer.subwords
