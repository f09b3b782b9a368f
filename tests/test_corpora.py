"""The real corpora (../shared/data): cleaning, counts, the combined set, splits, messy files, training."""

import csv
import logging
from collections import Counter

import pytest
from hydra.utils import instantiate

from helpers import SHARED_DATA, make_cfg
from seq2seq_nmt.data.cache import Settings, prepare
from seq2seq_nmt.data.corpus import ConcatCorpus, EuroparlCorpus, TutorialCorpus, count_lines
from seq2seq_nmt.data.download import CorpusError
from seq2seq_nmt.data.normalize import normalize_europarl, normalize_tutorial
from seq2seq_nmt.data.preprocess import ARTICLE_PREFIXES, TUTORIAL_PREFIXES
from seq2seq_nmt.data.split import split_pairs
from seq2seq_nmt.data.vocab import UNK

DROPS = ("dropped_empty_side", "dropped_too_long", "dropped_by_prefix")


def offline(*overrides: str) -> list[str]:
    """Dataset overrides that forbid downloads (the corpora must come from ../shared/data)."""
    return [*overrides, "dataset.corpus.download=false"]


def europarl(shared):
    files = {x: shared / "europarl" / f"europarl-v7.fr-en.{x}" for x in ("en", "fr")}
    return EuroparlCorpus(langs=("en", "fr"), paths=files)


def settings(**kw) -> Settings:
    base = dict(normalization="tutorial", langs=("fr", "en"), max_length=10, prefixes=None, val_size=0.05,
                test_size=0.05, seed=0, min_freq=(1, 1), max_size=(None, None))  # fmt: skip
    return Settings(**base | kw)


def test_cleaning_of_known_lines(shared_data):
    fr, en = next(TutorialCorpus(shared_data / "tutorial" / "eng-fra.txt").pairs(Counter()))
    assert (normalize_tutorial(en), normalize_tutorial(fr)) == ("go .", "va !")
    pairs = europarl(shared_data).pairs(Counter())
    assert [normalize_europarl(s) for s in next(pairs)] == [
        "resumption of the session",
        "reprise de la session",
    ]
    next(pairs)
    _, fr = next(pairs)
    assert fr.startswith('Comme vous avez pu le constater, le grand "bogue de l\'an 2000"')
    assert normalize_europarl(fr).startswith(
        "comme vous avez pu le constater le grand bogue de lan ne sest pas produit en revanche"
    )
    assert normalize_europarl("Ça\x07 coûte 15€, d'accord ?") == "ca coute daccord"


@pytest.fixture(scope="module")
def tutorial_dm(tmp_path_factory):
    """The ``dataset=tutorial`` datamodule on ../shared/data, set up once (cached in a tmp dir)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real corpora not available: {SHARED_DATA} does not exist")
    tmp = tmp_path_factory.mktemp("tutorial")
    dm = instantiate(
        make_cfg(tmp, "dataset=tutorial", f"paths.cache_dir={tmp}", *offline()).dataset
    )
    dm.setup()
    return dm


@pytest.fixture(scope="module")
def direct_pairs(tutorial_dm) -> tuple[list[str], list[tuple[str, str]]]:
    """The tutorial file's lines, and the pairs the tutorial's rules keep, by a plain loop."""
    lines = tutorial_dm.corpus.files()[0].read_text(encoding="utf-8").splitlines()
    kept = []
    for line in lines:
        en, fr = (normalize_tutorial(s) for s in line.split("\t")[:2])
        if (
            en
            and fr
            and max(len(en.split()), len(fr.split())) < 10
            and en.startswith(TUTORIAL_PREFIXES)
        ):
            kept.append((fr, en))
    return lines, kept


def test_tutorial_counts_add_up_and_match_a_direct_count(tutorial_dm, direct_pairs):
    stats = prepare(tutorial_dm.corpus, tutorial_dm.settings(), tutorial_dm.cache_dir).stats
    lines, kept = direct_pairs
    assert stats["lines_read"] == len(lines) == count_lines(tutorial_dm.corpus.files()[0])
    assert stats["lines_read"] == stats["pairs_kept"] + sum(stats[k] for k in DROPS)
    assert stats["pairs_kept"] == len(kept) == sum(len(ds) for ds in tutorial_dm.datasets.values())
    assert stats["dropped_by_prefix"] > 0 and stats["dropped_too_long"] > 0


def test_europarl_counts_and_direction(shared_data, tmp_path):
    over = [
        "dataset=europarl",
        f"paths.cache_dir={tmp_path}",
        "dataset.src_lang=en",
        "dataset.tgt_lang=fr",
        *offline(),
    ]
    dm = instantiate(make_cfg(tmp_path, *over).dataset)
    dm.setup()
    stats = prepare(dm.corpus, dm.settings(), dm.cache_dir).stats
    en, fr = dm.corpus.files()
    assert stats["lines_read"] == count_lines(en) == count_lines(fr)
    assert stats["lines_read"] == stats["pairs_kept"] + sum(stats[k] for k in DROPS)
    assert stats["dropped_empty_side"] > 0  # Europarl has lines empty on one side
    assert (
        "parliament" in dm.src_tokenizer.vocab.word2index
        and "parlement" in dm.tgt_tokenizer.vocab.word2index
    )


def test_both_is_the_two_corpora_concatenated(tutorial_dm, tmp_path):
    dm = instantiate(make_cfg(tmp_path, "dataset=both").dataset)
    assert isinstance(dm.corpus, ConcatCorpus) and len(dm.corpus.corpora) == 2
    tutorial, europarl = dm.corpus.corpora
    assert tutorial.identity() == tutorial_dm.corpus.identity()
    settings = tutorial_dm.settings()
    parts = [prepare(c, settings, tutorial_dm.cache_dir).stats for c in (tutorial, europarl)]
    both = prepare(dm.corpus, settings)
    assert both.stats == parts[0] + parts[1] and parts[1]["pairs_kept"] > 0
    assert sum(len(src) for src, _, _ in both.splits.values()) == both.stats["pairs_kept"]


def test_splits_are_disjoint_on_both_sides_on_tatoeba(tutorial_dm, direct_pairs):
    _, pairs = direct_pairs
    for side in (0, 1):  # Tatoeba: several translations per source, and per target
        assert max(Counter(p[side] for p in pairs).values()) > 1
    for side in (0, 1):
        seen = [{p[side] for p in split} for split in split_pairs(pairs, 0.05, 0.05, 7)]
        assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])
    train = tutorial_dm.datasets["train"]
    sources, targets = ({tuple(x) for x in seqs} for seqs in (train.src, train.tgt))
    train_refs = {tutorial_dm.tgt_tokenizer.decode(t) for t in train.tgt}
    for name in ("val", "test"):  # with min_freq=1 a sentence without UNK is spelled exactly
        ds = tutorial_dm.datasets[name]
        assert not {tuple(x) for x in ds.src if UNK not in x} & sources
        assert not {tuple(x) for x in ds.tgt if UNK not in x} & targets
        assert not set(ds.refs) & train_refs  # the references themselves, as strings
        overlap = tutorial_dm.split_report["overlap"][name]
        assert overlap == {"src_in_train_pct": 0.0, "tgt_in_train_pct": 0.0}


def test_article_filter_keeps_the_articles_pairs(shared_data, tmp_path):
    """The article's 59 prefixes and max_length 12 on the tutorial file, against a plain loop."""
    lines = (shared_data / "tutorial" / "eng-fra.txt").read_text(encoding="utf-8").splitlines()
    direct = 0
    for line in lines:
        en, fr = (normalize_tutorial(s) for s in line.split("\t")[:2])
        long = max(len(en.split()), len(fr.split())) >= 12
        direct += bool(en and fr and not long and en.startswith(ARTICLE_PREFIXES))
    over = ("dataset=tutorial", "dataset.prefixes=article", "dataset.max_length=12")
    dm = instantiate(make_cfg(tmp_path, *over, "dataset.cache_dir=null", *offline()).dataset)
    dm.setup()
    assert sum(len(ds) for ds in dm.datasets.values()) == direct == 25164
    assert dm.split_report["groups"] < direct and dm.split_report["largest_group"] > 1


def test_external_test_set_replaces_the_slice_and_is_removed_from_training(shared_data, tmp_path):
    lines = (shared_data / "tutorial" / "eng-fra.txt").read_text(encoding="utf-8").splitlines()
    test_file = tmp_path / "test.tsv"
    test_file.write_text("\n".join(lines[5000:5200]) + "\n", encoding="utf-8")
    over = ("dataset=tutorial", "+dataset/corpus@dataset.test_corpus=tutorial",
            f"dataset.test_corpus.path={test_file}", "dataset.cache_dir=null")  # fmt: skip
    dm = instantiate(make_cfg(tmp_path, *over, *offline()).dataset)
    dm.setup()
    report, test = dm.split_report, dm.datasets["test"]
    assert 0 < len(test) <= 200 and report["train_pairs_removed_for_test"] > 0
    assert report["overlap"]["test"] == {"src_in_train_pct": 0.0, "tgt_in_train_pct": 0.0}
    expected = {normalize_tutorial(ln.split("\t")[0]) for ln in lines[5000:5200]}
    assert set(test.refs) <= expected  # fr-en: the references are the English side
    train_refs = {dm.tgt_tokenizer.decode(t) for t in dm.datasets["train"].tgt}
    assert not set(test.refs) & train_refs


def test_misaligned_europarl_files_are_one_clear_error(tmp_path):
    (tmp_path / "a.en").write_text("one\ntwo\nthree\n")
    (tmp_path / "a.fr").write_text("un\ndeux")
    with pytest.raises(CorpusError, match=r"a.en has 3 lines, .*a.fr has 2"):
        files = {"en": tmp_path / "a.en", "fr": tmp_path / "a.fr"}
        list(EuroparlCorpus(langs=("en", "fr"), paths=files).pairs(Counter()))


def test_malformed_lines_are_counted_and_reported(tmp_path, caplog):
    (tmp_path / "t.txt").write_bytes(
        b"Go.\tVa !\tCC-BY 2.0 (France) Attribution: tatoeba.org\nno tab here\n\n"
        b"Caf\xe9 ?\tCaf\xc3\xa9 ?\nHi.\t\nRun!\tCours !\n"
    )
    (tmp_path / "e.en").write_bytes(b"Hello\n\nBad \xff byte\n")
    (tmp_path / "e.fr").write_bytes(b"Bonjour\nOrphan\nMauvais octet\n")
    corpus = ConcatCorpus(
        [
            TutorialCorpus(tmp_path / "t.txt"),
            EuroparlCorpus(paths={"en": tmp_path / "e.en", "fr": tmp_path / "e.fr"}),
        ]  # fmt: skip
    )
    with caplog.at_level(logging.INFO):
        stats = prepare(corpus, settings(val_size=1, test_size=1)).stats
    expected = {"lines_without_tab": 1, "blank_lines": 1, "invalid_utf8_repaired": 2,
                "dropped_empty_side": 2, "lines_read": 7, "pairs_kept": 5}  # fmt: skip
    assert stats == expected
    dm = instantiate(make_cfg(tmp_path, "dataset=sample", "dataset.val_size=1", "dataset.test_size=1").dataset,
                     corpus=corpus)  # fmt: skip
    with caplog.at_level(logging.INFO):
        dm.setup()
    assert all(f"{k}={v}" in caplog.text for k, v in expected.items())


def train_losses(tmp_path, dataset: str, *overrides: str) -> list[float]:
    from seq2seq_nmt.train.run import train

    cfg = make_cfg(
        tmp_path, "debug=fast", f"dataset={dataset}", f"paths.cache_dir={tmp_path / 'cache'}", "logger=csv",
        "model.emb_size=32", "model.hidden_size=32", "optimizer.lr=0.01", "trainer.max_epochs=2",
        "trainer.limit_train_batches=10", "trainer.limit_val_batches=1", "trainer.log_every_n_steps=1",
        "teacher_forcing_ratio=1.0", "test=false", "~callbacks.model_checkpoint", *overrides,
    )  # fmt: skip
    train(cfg)
    with (tmp_path / "csv" / "metrics.csv").open() as f:
        return [float(r["train/loss"]) for r in csv.DictReader(f) if r.get("train/loss")]


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["tutorial", "europarl", "both"])
def test_short_training_on_each_dataset_lowers_the_loss(shared_data, tmp_path, dataset):
    overrides = [f"paths.data_dir={shared_data}"]
    if dataset == "both":
        overrides += [
            f"dataset.corpus.corpora.{c}.download=false" for c in ("tutorial", "europarl")
        ]
    else:
        overrides += offline()
    losses = train_losses(tmp_path, dataset, *overrides)
    assert len(losses) == 20
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < first - 1.0, (first, last)  # more than one nat lower
