"""Any language pair: language codes, corpora of every kind, cleaning that keeps the language,
SentencePiece subwords end to end (detokenised output, BLEU against raw references)."""

import csv
import gzip
import shutil
import subprocess
import sys
from collections import Counter

import pytest
import sacrebleu
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from helpers import CONF, ROOT, SHARED_DATA, make_cfg
from seq2seq_nmt.config import ConfigError, validate
from seq2seq_nmt.data.corpus import ParallelCorpus, TatoebaCorpus
from seq2seq_nmt.data.io import CorpusError
from seq2seq_nmt.data.normalize import NORMALIZERS, normalize_unicode
from seq2seq_nmt.data.tokenizer import TOKENIZERS, SentencePiece, from_dict

GERMAN = SHARED_DATA / "tatoeba" / "deu-eng.txt"
LINES = [
    "Die Straße ist groß, die Bäume sind grün.",
    "Über den Wolken muss die Freiheit wohl grenzenlos sein.",
    "Съешь же ещё этих мягких французских булок.",
    "東京は日本の首都です。",
    "Wir sind müde 😴 und hungrig 🍕!",
]


def german_cfg(tmp_path, *overrides: str):
    if not GERMAN.is_file():
        pytest.skip(f"real corpora not available: {GERMAN} does not exist")
    return make_cfg(
        tmp_path, "debug=fast", "dataset=tatoeba", f"dataset.corpus.path={GERMAN}",
        "dataset.src_lang=de", "dataset.tgt_lang=en", f"paths.cache_dir={tmp_path / 'cache'}",
        *overrides,
    )  # fmt: skip


def test_sentencepiece_round_trips_every_script_with_byte_fallback():
    train = [normalize_unicode(s) for s in LINES[:2]] * 20  # no Cyrillic, CJK or emoji in training
    src, tgt = SentencePiece(vocab_size=60).train(lambda: iter(train), lambda: iter(train), (1, 1), (None, None))  # fmt: skip
    assert src is tgt  # joint
    for line in LINES:
        clean = normalize_unicode(line)
        ids = src.encode(clean)
        assert src.decode(ids) == clean and ids[-1] == 2  # EOS
    assert any(p.startswith("<0x") for p in src.pieces(src.encode(LINES[3])))  # bytes, not <unk>
    again = from_dict(torch.load(_saved(src.to_dict()), weights_only=True))
    assert again.encode(LINES[0]) == src.encode(LINES[0])


def _saved(obj):
    import io

    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return buf


def test_unicode_cleaning_keeps_case_accents_punctuation_and_scripts():
    assert normalize_unicode("  Die  Straße\tist\u00a0groß. ") == "Die Straße ist groß."
    assert normalize_unicode("ﬁne Ｔｅｓｔ") == "fine Test"  # NFKC
    for line in LINES:
        assert normalize_unicode(line) == line


def test_german_corpus_survives_unicode_cleaning(tmp_path):
    dm = instantiate(
        german_cfg(tmp_path, "dataset.max_length=null", "dataset.cache_dir=null").dataset
    )
    dm.setup()
    lines = GERMAN.read_text(encoding="utf-8").splitlines()
    direct = sum(1 for ln in lines if all(c.strip() for c in ln.split("\t")[:2]))
    assert sum(len(ds) for ds in dm.datasets.values()) == direct == len(lines)
    words = {w for seq in dm.datasets["train"].src for w in dm.src_tokenizer.pieces(seq)}
    assert "▁Straße" in words or any("ß" in w for w in words)


@pytest.mark.parametrize(
    ("dataset", "extra"),
    [("sample", []), ("tutorial", []), ("both", []), ("tatoeba", []), ("europarl", []),
     ("parallel", ["dataset.corpus.src_path=a", "dataset.corpus.tgt_path=b"]),
     ("huggingface", ["dataset.corpus.name=x"])],
)  # fmt: skip
def test_language_codes_compose_for_every_dataset(tmp_path, dataset, extra):
    swap = ["dataset.src_lang=en", "dataset.tgt_lang=fr"]
    if dataset == "europarl":
        swap = ["dataset.pair=de-en", "dataset.src_lang=en", "dataset.tgt_lang=de"]
    cfg = make_cfg(tmp_path, f"dataset={dataset}", *swap, *extra)
    validate(cfg)
    corpus = cfg.dataset.corpus
    corpora = corpus.corpora.values() if "corpora" in corpus else [corpus]
    for c in corpora:
        assert list(c.langs) == [cfg.dataset.src_lang, cfg.dataset.tgt_lang]
    if dataset == "europarl":
        made = instantiate(corpus)
        assert made.names == ("europarl-v7.de-en.en", "europarl-v7.de-en.de")
        assert corpus.url == "https://www.statmt.org/europarl/v7/de-en.tgz"
    if dataset == "huggingface":
        assert (corpus.src_key, corpus.tgt_key) == ("translation.en", "translation.fr")


def test_europarl_pair_sets_the_direction(tmp_path):
    cfg = make_cfg(tmp_path, "dataset=europarl", "dataset.pair=de-en")
    assert (cfg.dataset.src_lang, cfg.dataset.tgt_lang) == ("de", "en")


def test_tatoeba_file_is_found_in_the_data_folder_by_language(tmp_path):
    (tmp_path / "tatoeba").mkdir()
    (tmp_path / "tatoeba" / "deu-eng.txt").write_text("Hi.\tHallo.\tCC-BY\n", encoding="utf-8")
    cfg = make_cfg(tmp_path, "dataset=tatoeba", "dataset.src_lang=de", f"paths.data_dir={tmp_path}")
    assert list(instantiate(cfg.dataset.corpus).pairs(Counter())) == [("Hallo.", "Hi.")]
    with pytest.raises(CorpusError, match="pairs English with another language"):
        TatoebaCorpus(tmp_path / "x.txt", langs=("de", "fr"))


def test_gzip_and_tsv_parallel_files_read_like_plain_ones(tmp_path):
    de, en = ["Guten Morgen.", "Danke schön!"], ["Good morning.", "Thank you!"]
    (tmp_path / "a.de").write_text("\n".join(de) + "\n", encoding="utf-8")
    (tmp_path / "a.en").write_text("\n".join(en) + "\n", encoding="utf-8")
    (tmp_path / "a.de.gz").write_bytes(gzip.compress((tmp_path / "a.de").read_bytes()))
    tsv = "".join(f"x\t{e}\t{d}\n" for d, e in zip(de, en, strict=True))
    (tmp_path / "a.tsv.gz").write_bytes(gzip.compress(tsv.encode()))
    langs = ("de", "en")
    plain = list(ParallelCorpus(tmp_path / "a.de", tmp_path / "a.en", langs=langs).pairs(Counter()))
    assert plain == list(zip(de, en, strict=True))
    packed = ParallelCorpus(tmp_path / "a.de.gz", tmp_path / "a.en", langs=langs)
    assert list(packed.pairs(Counter())) == plain
    columns = ParallelCorpus(path=tmp_path / "a.tsv.gz", src_column=2, tgt_column=1, langs=langs)
    assert list(columns.pairs(Counter())) == plain
    with pytest.raises(CorpusError, match="not both"):
        ParallelCorpus(tmp_path / "a.de", tmp_path / "a.en", path=tmp_path / "a.tsv.gz")


def test_prefix_filter_needs_an_english_side(tmp_path):
    cfg = make_cfg(tmp_path, "dataset=parallel", "dataset.src_lang=de", "dataset.tgt_lang=fr",
                   "dataset.corpus.src_path=a", "dataset.corpus.tgt_path=b", "dataset.prefixes=tutorial")  # fmt: skip
    with pytest.raises(ConfigError, match="neither side of de-fr is English"):
        validate(cfg)  # the one place: the datamodule itself does not check it again


def test_same_source_and_target_language_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="dataset.src_lang and dataset.tgt_lang are both 'en'"):
        validate(make_cfg(tmp_path, "dataset.src_lang=en"))


def test_a_corpus_of_other_languages_is_one_line_from_train_py(tmp_path):
    proc = subprocess.run(
        [sys.executable, "train.py", "debug=fast", "dataset.src_lang=de", f"hydra.run.dir={tmp_path}"],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: the Tatoeba corpus holds fr and en, but dataset.src_lang/tgt_lang are de-en"
    )


def test_huggingface_dataset_on_local_disk_trains(tmp_path):
    datasets = pytest.importorskip("datasets")
    rows = [{"de": f"Ich habe {n} Äpfel.", "en": f"I have {n} apples."} for n in range(60)]
    datasets.Dataset.from_dict({"translation": rows}).save_to_disk(str(tmp_path / "hf"))
    cfg = make_cfg(tmp_path, "debug=fast", "dataset=huggingface", f"dataset.corpus.name={tmp_path / 'hf'}",
                   "dataset.src_lang=de", "dataset.tgt_lang=en", "dataset.cache_dir=null",
                   "tokenizer=sentencepiece", "tokenizer.vocab_size=100")  # fmt: skip
    dm = instantiate(cfg.dataset)
    dm.setup()
    assert sum(len(ds) for ds in dm.datasets.values()) == 60
    assert all(r.startswith("I have ") for r in dm.datasets["val"].refs)  # raw, cased
    bad = make_cfg(tmp_path, "dataset=huggingface", f"dataset.corpus.name={tmp_path / 'hf'}",
                   "dataset.src_lang=de", "dataset.tgt_lang=fr", "dataset.cache_dir=null")  # fmt: skip
    with pytest.raises(CorpusError, match="no field 'translation.de' or 'translation.fr'"):
        instantiate(bad.dataset).setup()


def test_subword_settings_that_cannot_work_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="model.attention=tutorial"):
        validate(make_cfg(tmp_path, "tokenizer=sentencepiece", "model=tutorial"))
    with pytest.raises(ConfigError, match="tokenizer.model_type='char'"):
        validate(make_cfg(tmp_path, "tokenizer=sentencepiece", "tokenizer.model_type=char"))
    with pytest.raises(ConfigError, match="metrics.tokenize='13b'"):
        validate(make_cfg(tmp_path, "metrics.tokenize=13b"))


@pytest.fixture(scope="module")
def german_run(tmp_path_factory):
    """A short sentencepiece training on the German Tatoeba data: (run dir, best checkpoint)."""
    from seq2seq_nmt.train.run import train

    tmp = tmp_path_factory.mktemp("german")
    cfg = german_cfg(
        tmp, "tokenizer=sentencepiece", "tokenizer.vocab_size=2000", "logger=csv",
        "model.emb_size=128", "model.hidden_size=128", "optimizer.lr=0.003", "batch_size=128",
        "trainer.max_epochs=1", "trainer.limit_train_batches=150", "trainer.limit_val_batches=2",
        "trainer.log_every_n_steps=10", "teacher_forcing_ratio=1.0", "test=false",
    )  # fmt: skip
    train(cfg)
    return tmp, tmp / "checkpoints" / "last.ckpt"


@pytest.mark.slow
def test_a_short_german_training_lowers_the_loss(german_run):
    run, _ = german_run
    with (run / "csv" / "metrics.csv").open() as f:
        losses = [float(r["train/loss"]) for r in csv.DictReader(f) if r.get("train/loss")]
    assert len(losses) == 15 and losses[-1] < 0.7 * losses[0]


@pytest.mark.slow
def test_sentencepiece_checkpoint_translates_raw_text_alone_in_a_fresh_process(
    german_run, tmp_path
):
    _, ckpt = german_run
    alone = tmp_path / "elsewhere"
    alone.mkdir()
    shutil.copy(ckpt, alone / "model.ckpt")
    (alone / "in.txt").write_text("Die Straße ist groß.\nIch bin sehr müde.\n", encoding="utf-8")
    (alone / "ref.txt").write_text("The street is big.\nI am very tired.\n", encoding="utf-8")
    cmd = [sys.executable, str(ROOT / "translate.py"), "ckpt=model.ckpt", "input=in.txt",
           "reference=ref.txt", "output=out.txt"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=alone, capture_output=True, text=True, check=True)
    out = (alone / "out.txt").read_text(encoding="utf-8").splitlines()
    assert len(out) == 2 and all(line[:1].isupper() for line in out)  # cased English
    assert all(" ." not in line and "▁" not in line for line in out)  # detokenised
    refs = (alone / "ref.txt").read_text(encoding="utf-8").splitlines()
    expected = sacrebleu.corpus_bleu(out, [refs])
    assert f"BLEU = {expected.score:.2f}" in proc.stderr
    assert "references as given (raw)" in proc.stderr and "tok:13a" in proc.stderr
    refused = subprocess.run([*cmd[:3], "text=Hallo.", "replace_unk=true"], cwd=alone,
                             capture_output=True, text=True)  # fmt: skip
    assert refused.returncode == 2 and refused.stderr.startswith("error: replace_unk=true needs")


@pytest.mark.parametrize("option", sorted(p.stem for p in (CONF / "tokenizer").glob("*.yaml")))
def test_every_tokenizer_option_trains_round_trips_and_is_registered(option):
    cfg = OmegaConf.load(CONF / "tokenizer" / f"{option}.yaml")
    if "seed" in cfg:
        cfg.seed = 0  # ${seed} of train.yaml
    trainer = instantiate(cfg)
    src_lines = [normalize_unicode(s) for s in LINES] * 3
    tgt_lines = ["The street is wide.", "We are tired."] * 3
    src, tgt = trainer.train(lambda: iter(src_lines), lambda: iter(tgt_lines), (1, 1), (None, None))
    assert trainer.settings()["kind"] == trainer.kind
    assert (trainer.normalization is None or trainer.normalization in NORMALIZERS) and isinstance(
        trainer.subwords, bool
    )  # the TokenizerTrainer protocol's attributes, read without getattr defaults
    for tok, line in ((src, src_lines[0]), (tgt, tgt_lines[1])):
        assert TOKENIZERS[tok.kind] is type(tok)
        ids = tok.encode_batch([line])[0]
        assert tok.decode(ids) == line and ids[-1] == 2
        again = from_dict(torch.load(_saved(tok.to_dict()), weights_only=True))
        assert again.encode_batch([line]) == [ids] and len(again) == len(tok)
    assert all(cls.kind == kind and callable(cls.from_dict) for kind, cls in TOKENIZERS.items())
    assert from_dict({"index2word": ["<pad>", "<sos>", "<eos>", "<unk>", "a"]}).kind == "words"
    with pytest.raises(ValueError, match="unknown tokenizer kind 'bpe-dropout'"):
        from_dict({"kind": "bpe-dropout"})


@pytest.mark.parametrize(
    "override",
    ["tokenizer.vocab_size=4", "tokenizer.joint=maybe", "tokenizer.character_coverage=0",
     "tokenizer.byte_fallback=1", "tokenizer.max_sentences=0", "tokenizer.normalization=nfc",
     "dataset.tgt_lang=", "metrics.tokenize=moses"],
)  # fmt: skip
def test_every_tokenizer_and_language_key_refuses_a_bad_value(tmp_path, override):
    key = override.split("=")[0]
    with pytest.raises(ConfigError, match=rf"^{key}=.*: "):
        validate(make_cfg(tmp_path, "tokenizer=sentencepiece", override))
