"""The streaming preprocessing and its on-disk cache: same result as the plain pipeline, built once."""

import dataclasses
import logging
import multiprocessing as mp
import os
import re
import time
from collections import Counter

import numpy as np
import pytest
import torch
from hydra.utils import get_class

from helpers import CONF
from seq2seq_nmt.data import cache as cache_mod
from seq2seq_nmt.data.cache import Ragged, Settings, prepare
from seq2seq_nmt.data.corpus import ConcatCorpus, TutorialCorpus
from seq2seq_nmt.data.datamodule import PairDataset, TranslationDataModule, collate
from seq2seq_nmt.data.download import CorpusError
from seq2seq_nmt.data.preprocess import filter_pairs, per_side
from seq2seq_nmt.data.split import split_pairs
from seq2seq_nmt.data.vocab import UNK, Vocab

# every corpus class a dataset option names (conf/dataset/*.yaml and conf/dataset/corpus/*.yaml)
CORPUS_TARGETS = set(
    re.findall(r"_target_: (seq2seq_nmt\.data\.corpus\.\w+)", "".join(
        p.read_text() for p in (CONF / "dataset").rglob("*.yaml")
    ))
)  # fmt: skip
SUBJECTS = ["I am", "You are", "He is", "We are", "She is", "They are"]
ADJ = ["cold", "tired", "happy", "late", "ready", "sick", "busy", "rich", "free", "sad"]
FR_SUBJ = ["Je suis", "Tu es", "Il est", "Nous sommes", "Elle est", "Ils sont"]
FR_ADJ = [
    "froid",
    "fatigué",
    "heureux",
    "en retard",
    "prêt",
    "malade",
    "occupé",
    "riche",
    "libre",
    "triste",
]


def write_corpus(path, repeat: int = 2) -> None:
    """Sentences with repeated sources (two translations each) and a few rare words."""
    lines = []
    for i, (s, fs) in enumerate(zip(SUBJECTS, FR_SUBJ, strict=True)):
        for j, (a, fa) in enumerate(zip(ADJ, FR_ADJ, strict=True)):
            lines += [f"{s} {a}.\t{fs} {fa}.", f"{s} {a}!\t{fs} {fa} !"] * (1 + (i + j) % repeat)
    lines.append("I am zyx.\tJe suis qwv.")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def datamodule(path, cache_dir, langs=("fr", "en"), **kw) -> TranslationDataModule:
    kw = dict(max_length=10, val_size=0.1, test_size=0.1, seed=3) | kw
    corpus = TutorialCorpus(path, langs)
    return TranslationDataModule(
        corpus, src_lang=langs[0], tgt_lang=langs[1], cache_dir=cache_dir, **kw
    )


def arrays(dm: TranslationDataModule) -> dict:
    return {
        k: ([ds.src[i].tolist() for i in range(len(ds))], ds.refs) for k, ds in dm.datasets.items()
    }


def test_streamed_result_equals_the_plain_pipeline(tmp_path):
    write_corpus(tmp_path / "c.txt")
    dm = datamodule(tmp_path / "c.txt", tmp_path / "cache", ("en", "fr"), min_freq=2)
    dm.setup()
    corpus = TutorialCorpus(tmp_path / "c.txt", ("en", "fr"))
    pairs = filter_pairs(corpus.pairs(Counter()), "tutorial", ("en", "fr"), 10, None, Counter())
    train, val, test = split_pairs(pairs, 0.1, 0.1, 3)
    src_vocab = Vocab.build((s for s, _ in train), 2)
    tgt_vocab = Vocab.build((t for _, t in train), 2)
    assert dm.src_tokenizer.vocab.index2word == src_vocab.index2word
    assert dm.tgt_tokenizer.vocab.word2count == tgt_vocab.word2count
    for name, split in zip(("train", "val", "test"), (train, val, test), strict=True):
        ds = dm.datasets[name]
        assert len(ds) == len(split) > 0
        for i, (s, t) in enumerate(split):
            assert ds.src[i].tolist() == src_vocab.encode(s)
            assert ds.tgt[i].tolist() == tgt_vocab.encode(t)
        assert ds.refs == (None if name == "train" else [t for _, t in split])


def test_second_setup_reuses_the_cache_without_reading_the_corpus(tmp_path, monkeypatch):
    write_corpus(tmp_path / "c.txt")
    first = datamodule(tmp_path / "c.txt", tmp_path / "cache")
    first.setup()
    reads = Counter()
    original = TutorialCorpus.pairs

    def counting(self, stats):
        reads["pairs"] += 1
        return original(self, stats)

    monkeypatch.setattr(TutorialCorpus, "pairs", counting)
    again = datamodule(tmp_path / "c.txt", tmp_path / "cache")
    again.setup()
    assert reads["pairs"] == 0 and again.cache_key == first.cache_key is not None
    assert arrays(again) == arrays(first)
    assert isinstance(again.datasets["train"].src.flat, np.memmap)  # served from disk
    datamodule(tmp_path / "c.txt", tmp_path / "cache", min_freq=2).setup()  # new settings
    assert reads["pairs"] == 1
    write_corpus(tmp_path / "c.txt", repeat=3)  # the file changed
    datamodule(tmp_path / "c.txt", tmp_path / "cache").setup()
    assert reads["pairs"] == 2
    assert len(list((tmp_path / "cache").glob(".*.part"))) == 0  # no half-built entry left


def _job(path, cache, out) -> None:
    data = prepare(TutorialCorpus(path), SETTINGS, cache)
    out.put((data.key, len(data.splits["train"][0])))


def _slow_counted_build(corpus, settings, out, eval_sets=None, tokenizer=None):
    (out.parent.parent / f"built-{os.getpid()}").touch()
    time.sleep(0.3)  # the other jobs reach the lock meanwhile
    return ORIGINAL_BUILD(corpus, settings, out, eval_sets, tokenizer)


ORIGINAL_BUILD = cache_mod.build
SETTINGS = Settings("tutorial", ("fr", "en"), 10, None, 0.1, 0.1, 0, (1, 1), (None, None))


def test_concurrent_jobs_build_once_and_share(tmp_path, monkeypatch):
    write_corpus(tmp_path / "c.txt")
    monkeypatch.setattr(cache_mod, "build", _slow_counted_build)
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    jobs = [
        ctx.Process(target=_job, args=(tmp_path / "c.txt", tmp_path / "cache", out))
        for _ in range(3)
    ]
    for j in jobs:
        j.start()
    for j in jobs:
        j.join(60)
    assert [j.exitcode for j in jobs] == [0, 0, 0]
    results = [out.get(timeout=5) for _ in jobs]
    assert len(set(results)) == 1
    assert len(list(tmp_path.glob("built-*"))) == 1


def test_failed_build_leaves_no_cache_entry(tmp_path):
    class Broken(TutorialCorpus):
        def pairs(self, stats):
            yield from list(super().pairs(stats))[:5]
            raise CorpusError("disk went away")

    write_corpus(tmp_path / "c.txt")
    with pytest.raises(CorpusError, match="disk went away"):
        prepare(Broken(tmp_path / "c.txt"), SETTINGS, tmp_path / "cache")
    assert [p.suffix for p in (tmp_path / "cache").iterdir()] == [".lock"]
    assert (
        len(prepare(TutorialCorpus(tmp_path / "c.txt"), SETTINGS, tmp_path / "cache").splits) == 3
    )


def test_nothing_left_after_filtering_is_a_clear_error(tmp_path):
    write_corpus(tmp_path / "c.txt")
    with pytest.raises(CorpusError, match="no pairs left after cleaning and filtering"):
        datamodule(tmp_path / "c.txt", None, max_length=2).setup()


def test_vocabulary_settings_per_language(tmp_path, caplog):
    write_corpus(tmp_path / "c.txt")
    dm = datamodule(tmp_path / "c.txt", tmp_path / "cache", min_freq={"src": 1, "tgt": 2})
    with caplog.at_level(logging.INFO):
        dm.setup()
    assert (
        "qwv" in dm.src_tokenizer.vocab.word2index
        and "zyx" not in dm.tgt_tokenizer.vocab.word2index
    )
    assert "validation OOV src/tgt" in caplog.text and "vocab src/tgt" in caplog.text
    dm = datamodule(tmp_path / "c.txt", tmp_path / "cache", ("en", "fr"), max_vocab_size={"fr": 5})
    dm.setup()
    assert len(dm.tgt_tokenizer.vocab) == 4 + 5 and len(dm.src_tokenizer.vocab) > 4 + 5
    assert per_side({"en": 3}, ("fr", "en"), default=1) == (1, 3)
    with pytest.raises(ValueError, match="unknown keys"):
        per_side({"source": 3}, ("fr", "en"))


def test_validation_oov_rate_counts_unknown_words(tmp_path):
    write_corpus(tmp_path / "c.txt")
    settings = dataclasses.replace(SETTINGS, min_freq=(14, 14), val_size=0.3)
    data = prepare(TutorialCorpus(tmp_path / "c.txt"), settings, None)
    for side, k in (("src", 0), ("tgt", 1)):
        ids = np.concatenate([seq[:-1] for seq in data.splits["val"][k]])
        assert 0 < data.oov[side] == pytest.approx(np.mean(ids == UNK))


def test_ragged_items_and_lengths_feed_collate():
    r = Ragged(np.array([5, 6, 2, 7, 2], dtype=np.int32), np.array([0, 3, 5]))
    assert len(r) == 2 and r[1].tolist() == [7, 2] and r[-2].tolist() == [5, 6, 2]
    assert r.lengths().tolist() == [3, 2] and [x.tolist() for x in r] == [[5, 6, 2], [7, 2]]
    with pytest.raises(IndexError):
        r[2]
    ds = PairDataset(
        r, Ragged(np.array([8, 2, 9, 9, 9, 2], dtype=np.int32), np.array([0, 2, 6])), ["a", "b"]
    )
    assert ds.lengths().tolist() == [3, 4]
    batch = collate([ds[0], ds[1]])
    assert batch["src"].dtype == batch["tgt_out"].dtype == torch.long
    assert batch["tgt_out"].tolist() == [[8, 2, 0, 0], [9, 9, 9, 2]] and batch["refs"] == ["a", "b"]


def test_a_tokenizer_other_than_the_settings_name_is_refused(tmp_path):
    from seq2seq_nmt.data.tokenizer import SentencePiece

    write_corpus(tmp_path / "c.txt")
    with pytest.raises(ValueError, match="is not the tokenizer's"):
        prepare(
            TutorialCorpus(tmp_path / "c.txt"),
            SETTINGS,
            tmp_path / "cache",
            tokenizer=SentencePiece(),
        )


class Unnamed:
    """A corpus class without ``identity()``: its preprocessing could not be cached."""

    langs = ("fr", "en")

    def pairs(self, stats: Counter):
        yield "Je suis prêt.", "I am ready."

    def describe(self) -> str:
        return "unnamed"


def test_a_corpus_without_identity_is_refused_in_one_line_not_left_uncached(tmp_path):
    with pytest.raises(CorpusError, match=r"^Unnamed is not a corpus: it has no identity \("):
        TranslationDataModule(Unnamed(), cache_dir=tmp_path)
    settings = TranslationDataModule(TutorialCorpus(tmp_path / "x.txt")).settings()
    with pytest.raises(CorpusError, match="has no identity"):
        prepare(Unnamed(), settings, cache_dir=None)  # not even built uncached
    with pytest.raises(CorpusError, match="has no identity"):
        ConcatCorpus([TutorialCorpus(tmp_path / "x.txt"), Unnamed()])


@pytest.mark.parametrize("target", sorted(CORPUS_TARGETS))
def test_every_corpus_option_is_a_corpus(target):
    """Each corpus class of a dataset option provides the ``Corpus`` protocol's methods."""
    cls = get_class(target)
    assert all(callable(getattr(cls, m, None)) for m in ("pairs", "describe", "identity"))
