"""Normalisation, vocabularies, filtering, splits, padding and the bucketed batch sampler."""

from collections import Counter

import numpy as np
import pytest
import torch

from seq2seq_nmt.data import sampler as sampler_mod
from seq2seq_nmt.data.batch import collate
from seq2seq_nmt.data.corpus import SAMPLE_PATH, SampleCorpus, TutorialCorpus
from seq2seq_nmt.data.normalize import get_normalizer, normalize_tutorial
from seq2seq_nmt.data.preprocess import ARTICLE_PREFIXES, TUTORIAL_PREFIXES, filter_pairs
from seq2seq_nmt.data.sampler import BucketBatchSampler
from seq2seq_nmt.data.split import group_ids, split_pairs
from seq2seq_nmt.data.tokenizer import WordTokenizer, labelled_positions
from seq2seq_nmt.data.vocab import EOS, PAD, SOS, UNK, Vocab, content_positions, strip_specials


def test_tutorial_normalisation():
    assert normalize_tutorial("Je suis très fatigué !") == "je suis tres fatigue !"
    assert normalize_tutorial("  I'm 25, OK?") == "i m ok ?"
    assert normalize_tutorial("Ça va...") == "ca va . . ."
    with pytest.raises(ValueError, match="unknown normalization"):
        get_normalizer("nope")


def test_specials_are_distinct_and_pad_is_not_sos():
    assert len({PAD, SOS, EOS, UNK}) == 4 and PAD == 0 and SOS != PAD


def test_vocab_counts_min_freq_and_unknown_words():
    v = Vocab.build(["a b a", "a c"], min_freq=2)
    assert v.word2count == {"a": 3, "b": 1, "c": 1}
    assert v.encode("a b zzz") == [v.word2index["a"], UNK, UNK, EOS]
    assert v.decode(v.encode("a a")) == ["a", "a"]
    assert Vocab.from_dict(v.to_dict()).index2word == v.index2word
    assert len(Vocab.build(["x y z x y x"], max_size=2)) == 4 + 2


def test_vocab_from_dict_rejects_missing_specials():
    with pytest.raises(ValueError, match="reserved"):
        Vocab.from_dict({"index2word": ["a", "b"]})


def test_tab_corpus_counts_malformed_lines(tmp_path):
    path = tmp_path / "c.txt"
    path.write_bytes(b"Hi.\tSalut.\n\nno tab here\nGo.\tVa !\tCC-BY attribution\nBad \xff.\tMal.\n")
    stats: Counter = Counter()
    pairs = list(TutorialCorpus(path).pairs(stats))
    assert pairs[:2] == [("Salut.", "Hi."), ("Va !", "Go.")]  # (fr, en): French -> English
    assert len(pairs) == 3
    assert stats["lines_without_tab"] == 1 and stats["blank_lines"] == 1
    assert stats["invalid_utf8_repaired"] == 1


def test_filters_and_direction():
    stats: Counter = Counter()
    raw = [("J'ai froid.", "I am cold."), ("Il court.", "He runs."), ("Vide.", ""),
           ("Je suis longue.", "I am a very very very long sentence.")]  # fmt: skip
    kept = filter_pairs(raw, "tutorial", ("fr", "en"), 8, "tutorial", stats)
    assert kept == [("j ai froid .", "i am cold .")]
    assert (stats["dropped_by_prefix"], stats["dropped_empty_side"], stats["dropped_too_long"]) == (
        1,
        1,
        1,
    )
    swapped = [(en, fr) for fr, en in raw[:1]]
    assert filter_pairs(swapped, "tutorial", ("en", "fr"), None, "tutorial", Counter()) == [
        ("i am cold .", "j ai froid .")
    ]
    with pytest.raises(ValueError, match="neither side of de-fr is English"):
        filter_pairs(raw, "tutorial", ("de", "fr"), None, "tutorial", Counter())


def test_split_is_deterministic_and_disjoint_on_both_sides():
    # Tatoeba's shape: a source with several translations, and targets shared by several sources
    pairs = [(f"s{i % 40}", f"t{i % 70}") for i in range(200)] + [
        (f"u{i}", f"v{i}") for i in range(60)
    ]
    a = split_pairs(pairs, 0.1, 5, seed=3)
    assert a == split_pairs(pairs, 0.1, 5, seed=3)
    assert a != split_pairs(pairs, 0.1, 5, seed=4)
    for side in (0, 1):
        seen = [{p[side] for p in split} for split in a]
        assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])
    assert (len(a[1]), len(a[2])) == (26, 5) and sum(map(len, a)) == 260


def test_groups_link_pairs_through_either_side():
    keys = np.array([[1, 10], [1, 11], [2, 11], [3, 12], [4, 13], [5, 13]], dtype=np.uint64)
    groups = group_ids(keys[:, 0], keys[:, 1]).tolist()
    assert groups[0] == groups[1] == groups[2]  # 1-10, 1-11 share a source; 1-11, 2-11 a target
    assert groups[4] == groups[5] and len({groups[0], groups[3], groups[4]}) == 3


def test_article_prefix_list_is_the_articles():
    assert len(ARTICLE_PREFIXES) == 59 and ARTICLE_PREFIXES[:12] == TUTORIAL_PREFIXES
    for p in ("did you", "it was", "i thought", "he was", "i had", "i just", "have you", "no one",
              "i am", "you re very", "why don t", "i can"):  # fmt: skip
        assert p in ARTICLE_PREFIXES
    for p in ("that is", "there is", "where is", "let s "):  # not in the article's list
        assert p not in ARTICLE_PREFIXES


def test_collate_pads_with_pad_and_shifts_target():
    items = [
        (np.array([5, 6, EOS]), np.array([7, EOS]), "r1"),
        (np.array([5, EOS]), np.array([8, 9, EOS]), "r2"),
    ]
    b = collate(items)
    assert b["src"].tolist() == [[5, 6, EOS], [5, EOS, PAD]]
    assert b["src_len"].tolist() == [3, 2]
    assert b["tgt_out"].tolist() == [[7, EOS, PAD], [8, 9, EOS]]
    assert b["tgt_in"].tolist() == [[SOS, 7, PAD], [SOS, 8, 9]]
    assert b["refs"] == ["r1", "r2"]


def test_sampler_covers_each_index_once_and_buckets_by_length():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 30, size=1000)
    s = BucketBatchSampler(lengths, batch_size=32, seed=1)
    batches = list(s)
    assert sorted(i for b in batches for i in b) == list(range(1000))
    spread = np.mean([np.ptp(lengths[b]) for b in batches])
    random_spread = np.mean([np.ptp(lengths[rng.permutation(1000)[:32]]) for _ in range(20)])
    assert spread < random_spread / 3
    s.set_epoch(1)
    assert list(s) != batches  # a new order every epoch
    assert list(BucketBatchSampler(lengths, 32, seed=1)) == batches  # same seed, same order


def test_sampler_max_tokens_bounds_padded_size():
    lengths = np.random.default_rng(0).integers(1, 50, size=500)
    for b in BucketBatchSampler(lengths, batch_size=1000, max_tokens=200, seed=0):
        assert len(b) == 1 or len(b) * lengths[b].max() <= 200


def test_sampler_resumes_mid_epoch():
    lengths = np.arange(100) % 17 + 1
    s = BucketBatchSampler(lengths, batch_size=8, seed=5)
    full = list(s)
    s2 = BucketBatchSampler(lengths, batch_size=8, seed=5)
    it = iter(s2)
    for _ in range(4):
        next(it)
    state = s2.state_dict()
    s3 = BucketBatchSampler(lengths, batch_size=8, seed=5)
    s3.load_state_dict(state)
    assert list(s3) == full[4:]


def test_sampler_shards_batches_across_ranks(monkeypatch):
    lengths = np.arange(203) % 13 + 1
    seen = []
    for rank in range(2):
        monkeypatch.setattr(sampler_mod, "_world", lambda r=rank: (2, r))
        seen.append(list(BucketBatchSampler(lengths, batch_size=10, seed=0)))
    assert len(seen[0]) == len(seen[1]) > 0
    flat = [{i for b in batches for i in b} for batches in seen]
    assert not flat[0] & flat[1]


def test_sample_corpus_is_bundled_and_clean():
    stats: Counter = Counter()
    pairs = list(SampleCorpus().pairs(stats))
    assert SAMPLE_PATH.is_file() and len(pairs) >= 2000
    assert set(stats) == {"lines_read"}
    kept = filter_pairs(pairs, "tutorial", ("fr", "en"), 10, None, Counter())
    assert len(kept) == len(pairs)


def test_sample_corpus_matches_its_generator():
    from seq2seq_nmt.data.sample_grammar import generate

    lines = SAMPLE_PATH.read_text(encoding="utf-8").splitlines()
    assert lines == [f"{en}\t{fr}" for en, fr in generate()]


def test_collate_tensors_are_long():
    b = collate([(np.array([4, EOS]), np.array([4, EOS]), None)])
    assert b["src"].dtype == torch.long and b["refs"] is None


def test_sampler_with_replacement_draws_uniformly_and_resumes():
    lengths = np.arange(1, 201) % 7 + 1
    s = BucketBatchSampler(lengths, 1, seed=5, replacement=True)
    drawn = [i for batch in s for i in batch]
    assert len(drawn) == len(s) == 200 and len(set(drawn)) < 200  # repeats, and gaps
    again = BucketBatchSampler(lengths, 1, seed=5, replacement=True)
    assert [i for b in again for i in b] == drawn  # epoch 0 of the same seed
    assert [i for b in s for i in b] != drawn  # the next epoch draws anew
    counts = np.bincount(
        [i for e in range(50) for b in (s.set_epoch(e) or s) for i in b], minlength=200
    )
    assert counts.min() > 10 and counts.max() < 100  # about 50 each: uniform, not by length


def test_split_sizes_that_leave_no_training_data_are_one_clear_error():
    from seq2seq_nmt.data.datamodule import TranslationDataModule
    from seq2seq_nmt.data.download import CorpusError

    pairs = [(f"s{i}", f"t{i}") for i in range(50)]
    with pytest.raises(ValueError, match=r"val\+test \(30\+25\) leave no training data of 50"):
        split_pairs(pairs, 0.6, 0.5, seed=0)
    dm = TranslationDataModule(SampleCorpus(), val_size=0.6, test_size=0.5)
    with pytest.raises(CorpusError, match="leave no training data"):
        dm.setup()


def test_one_helper_strips_eos_and_padding_for_words_pieces_and_attention_rows():
    ids = [SOS, 7, PAD, 8, EOS, 9, PAD]
    assert content_positions(ids) == [1, 3] and content_positions(ids, eos=True) == [1, 3, 4]
    assert strip_specials(ids) == [7, 8] and content_positions([7, 8], eos=True) == [0, 1]
    v = Vocab(["a", "b", "c", "d", "e", "f"])  # ids 4..9
    assert v.decode(ids) == ["d", "e"] == WordTokenizer(v).pieces(ids)
    assert labelled_positions(WordTokenizer(v), ids, eos=True) == ([1, 3, 4], ["d", "e", "<eos>"])
    assert labelled_positions(WordTokenizer(v), [7, 8], eos=True) == ([0, 1], ["d", "e"])
