"""End to end on the sample corpus: training lowers the loss, logs BLEU, and checkpoints translate."""

import json
import subprocess
import sys

import pytest
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from helpers import ROOT, make_cfg, run_translate
from seq2seq_nmt.train.run import build, instantiate_all
from seq2seq_nmt.translate.translator import Translator


class LossHistory(pl.Callback):
    def __init__(self):
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.losses.append(float(outputs["loss"]))


def fit(tmp_path, *overrides: str, steps: int = 40):
    """A short fit; returns the module, the trainer and the per-step training losses."""
    cfg = make_cfg(tmp_path, "debug=fast", "logger=csv", f"trainer.max_steps={steps}", *overrides)
    pl.seed_everything(cfg.seed)
    datamodule, module = build(cfg)
    history = LossHistory()
    trainer = pl.Trainer(
        accelerator="cpu", max_steps=steps, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=[history],
        limit_val_batches=0, default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(module, datamodule=datamodule)
    return module, trainer, history.losses


@pytest.mark.parametrize("optimizer", ["sgd", "adagrad", "adam"])
@pytest.mark.parametrize("loss", ["nll", "cross_entropy"])
def test_each_optimizer_and_loss_lowers_the_loss(tmp_path, optimizer, loss):
    overrides = [f"optimizer={optimizer}", f"loss={loss}"]
    if optimizer == "sgd":
        overrides.append("optimizer.lr=0.5")
    *_, losses = fit(tmp_path, *overrides)
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.85 * first, (first, last)


def test_val_bleu_and_samples_reach_tensorboard(trained_run):
    events = EventAccumulator(str(trained_run / "tensorboard")).Reload()
    scalars = events.Tags()["scalars"]
    assert {"val/bleu", "val/loss", "train/loss"} <= set(scalars)
    bleu = [e.value for e in events.Scalars("val/bleu")]
    assert len(bleu) >= 2 and bleu[-1] > bleu[0]
    assert any("samples" in t for t in events.Tags()["tensors"])


def test_checkpoint_holds_plain_types_and_everything_translation_needs(trained_ckpt):
    ckpt = torch.load(trained_ckpt, map_location="cpu", weights_only=True)
    meta = ckpt["nmt"]
    assert {"model", "src_tokenizer", "tgt_tokenizer", "data", "version"} <= set(meta)
    assert meta["data"]["normalization"] == "tutorial" and (
        meta["data"]["src_lang"],
        meta["data"]["tgt_lang"],
    ) == ("fr", "en")
    assert meta["src_tokenizer"]["kind"] == "words"
    assert meta["model"]["src_vocab_size"] == len(meta["src_tokenizer"]["index2word"])


def test_checkpoint_round_trip_in_a_fresh_process(tmp_path):
    module, trainer, _ = fit(tmp_path, "optimizer=adam", steps=30)
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    lines = ["je suis fatigue .", "il est grand .", "nous sommes prets ."]
    in_memory = Translator(
        module.net, module.src_tokenizer, module.tgt_tokenizer, module.data_config
    )
    expected = in_memory.translate(lines)
    (tmp_path / "in.txt").write_text("\n".join(lines) + "\n")
    out = subprocess.run(
        [sys.executable, "translate.py", f"ckpt={path}", f"input={tmp_path / 'in.txt'}"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert out.stdout.splitlines() == expected


def test_trained_model_translates_unknown_empty_and_long_input(trained_ckpt):
    translator = Translator.from_checkpoint(trained_ckpt)
    assert translator.encode("zzyzx") == [3, 2]  # UNK, EOS
    long_line = " ".join(["je suis fatigue"] * 70)
    out = translator.translate(["Je suis très fatigué !", "", "zzyzx qwxq", long_line])
    assert out[1] == "" and len(out) == 4
    assert out[0] and out[2] is not None and out[3]
    assert len(out[3].split()) <= int(1.5 * 211) + 5


def test_sample_model_learns(trained_ckpt):
    """Not one sentence for every input, and not a flood of <unk>."""
    translator = Translator.from_checkpoint(trained_ckpt)
    lines = ["je suis fatigue .", "il est malade .", "nous sommes contents .", "tu es grand ."]
    out = translator.translate(lines)
    assert len(set(out)) == len(out)
    assert not any("<unk>" in o for o in out)


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "checkpoint not found"), (b"PK\x03\x04 broken", "unreadable checkpoint"),
     (b"hello world", "not a checkpoint (neither a zip archive nor a pickle)")],
)  # fmt: skip
def test_bad_checkpoint_gives_one_line_error(tmp_path, content, message):
    path = tmp_path / "bad.ckpt"
    if content is not None:
        path.write_bytes(content)
    out = run_translate(f"ckpt={path}", "text=bonjour")
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and message in out.stderr, out.stderr


def test_foreign_checkpoint_is_refused(tmp_path):
    from seq2seq_nmt.checkpoint import CheckpointError

    path = tmp_path / "other.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1)}}, path)
    with pytest.raises(CheckpointError, match="not a seq2seq-nmt checkpoint"):
        Translator.from_checkpoint(path)


def test_loggers_and_callbacks_instantiate(tmp_path):
    cfg = make_cfg(tmp_path, "logger=csv")
    kinds = {type(x).__name__ for x in instantiate_all(cfg.callbacks) + instantiate_all(cfg.logger)}
    assert {"ModelCheckpoint", "LearningRateMonitor", "CSVLogger"} <= kinds
    assert "PlainProgress" in kinds  # pytest's output is no terminal: plain lines, no TQDM bars


def test_metrics_json_records_that_val_and_test_share_no_sentence_with_training(trained_run):
    metrics = json.loads((trained_run / "metrics.json").read_text())["metrics"]
    for name in ("val", "test"):
        assert metrics[f"data/{name}_src_in_train_pct"] == 0.0
        assert metrics[f"data/{name}_tgt_in_train_pct"] == 0.0


def test_debug_overfit_trains_on_the_same_batches_every_epoch(tmp_path):
    """Lightning turns shuffling off only in its own samplers; the bucketed one keeps epoch 0's
    order under trainer.overfit_batches, so debug=overfit overfits the same batches."""
    cfg = make_cfg(tmp_path, "debug=overfit", "trainer.max_epochs=3", "model.hidden_size=16")
    datamodule, module = build(cfg)
    seen: dict[int, list] = {}

    class Batches(pl.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            seen.setdefault(trainer.current_epoch, []).append(batch["src"].tolist())

    trainer = instantiate(
        cfg.trainer, callbacks=[Batches()], logger=False, enable_checkpointing=False,
        limit_val_batches=0,
    )  # fmt: skip
    trainer.fit(module, datamodule=datamodule)
    assert len(seen) == 3 and len(seen[0]) == cfg.trainer.overfit_batches
    assert seen[0] == seen[1] == seen[2]
