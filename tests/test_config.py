"""Every option of every config group composes, and the light ones instantiate."""

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from helpers import CONF, make_cfg
from seq2seq_nmt.model import ATTENTIONS

GROUPS = ["dataset", "model", "optimizer", "loss", "scheduler", "trainer", "logger", "callbacks"]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.mark.parametrize(
    ("group", "option"), [(g, o) for g in GROUPS for o in options(g)], ids=lambda x: str(x)
)
def test_every_option_composes(tmp_path, group, option):
    cfg = OmegaConf.to_container(make_cfg(tmp_path, f"{group}={option}"), resolve=True)
    node = cfg[group]
    if node:  # a `_target_` config, or a dict of them (callbacks, logger)
        targets = [node] if "_target_" in node else list(node.values())
        assert all("_target_" in t for t in targets), targets


def test_groups_have_the_options_the_issue_names():
    assert {"sample", "tutorial", "europarl", "both"} <= set(options("dataset"))
    assert {"sgd", "adagrad", "adam"} <= set(options("optimizer"))
    assert {"nll", "cross_entropy"} <= set(options("loss"))
    assert {"default", "cpu", "gpu"} <= set(options("trainer"))
    assert {"tensorboard", "csv"} <= set(options("logger"))


@pytest.mark.parametrize("optimizer", options("optimizer"))
def test_optimizers_instantiate_with_their_settings(tmp_path, optimizer):
    cfg = make_cfg(tmp_path, f"optimizer={optimizer}", "optimizer.lr=0.123")
    opt = instantiate(cfg.optimizer)([torch.nn.Parameter(torch.zeros(2))])
    assert opt.param_groups[0]["lr"] == 0.123


@pytest.mark.parametrize("attention", list(ATTENTIONS))
def test_model_attention_option(tmp_path, attention):
    cfg = make_cfg(tmp_path, f"model.attention={attention}", "model.hidden_size=32")
    net = instantiate(cfg.model, src_vocab_size=10, tgt_vocab_size=12)
    assert net.generator.out_features == 12
    assert (net.max_length is not None) == ATTENTIONS[attention].needs_max_length


def test_command_line_overrides_reach_the_config(tmp_path):
    cfg = make_cfg(
        tmp_path, "dataset.max_length=12", "teacher_forcing_ratio=0.25", "batch_size=7",
        "dataset.src_lang=en", "dataset.tgt_lang=fr", "loss=cross_entropy", "loss.label_smoothing=0.1",
    )  # fmt: skip
    assert cfg.dataset.max_length == cfg.model.max_length == 12
    assert cfg.dataset.batch_size == 7 and cfg.teacher_forcing_ratio == 0.25
    assert instantiate(cfg.loss)(ignore_index=0).label_smoothing == 0.1


@pytest.mark.parametrize(
    ("precision", "fused"), [("32-true", True), ("bf16-mixed", True), ("16-mixed", False)]
)
def test_adam_is_fused_except_under_a_gradient_scaler(tmp_path, precision, fused):
    cfg = make_cfg(tmp_path, f"trainer.precision={precision}")
    opt = instantiate(cfg.optimizer)([torch.nn.Parameter(torch.zeros(2))])
    assert bool(opt.defaults["fused"]) is fused


def test_bf16_with_fused_adam_and_gradient_clipping_trains_on_cpu(tmp_path, monkeypatch):
    """bf16-mixed keeps the fused optimizer and clips (Lightning's own plugin refuses that); run
    in bf16 even where the CPU has no native bf16 (slow there, but it works)."""
    from seq2seq_nmt.train import precision
    from seq2seq_nmt.train.run import train

    monkeypatch.setattr(precision, "native_bf16_cpu", lambda: True)

    overrides = ["debug=fast", "logger=csv", "trainer.precision=bf16-mixed", "trainer.gradient_clip_val=1.0",
                 "trainer.max_epochs=1", "trainer.limit_train_batches=3", "trainer.limit_val_batches=1",
                 "test=false", "model.emb_size=16", "model.hidden_size=16"]  # fmt: skip
    metrics = train(make_cfg(tmp_path, *overrides))
    assert torch.isfinite(torch.tensor(metrics["train/loss"]))


DEBUG = {  # what each debug option sets (beside fast's settings, which they all include)
    "fast": {"trainer.accelerator": "cpu", "trainer.devices": 1,
             "trainer.enable_progress_bar": False, "trainer.enable_model_summary": False,
             "callbacks.progress_bar": None, "model.emb_size": 64, "model.hidden_size": 64},
    "overfit": {"trainer.overfit_batches": 3, "trainer.max_epochs": 60},
    "limit": {"trainer.limit_train_batches": 5, "trainer.limit_val_batches": 2,
              "trainer.limit_test_batches": 2, "trainer.max_epochs": 3},
    "profile": {"trainer.profiler._target_": "pytorch_lightning.profilers.SimpleProfiler",
                "trainer.max_epochs": 2},
}  # fmt: skip


def test_every_debug_option_is_checked():
    assert set(DEBUG) == set(options("debug"))


@pytest.mark.parametrize("option", sorted(DEBUG))
def test_debug_options_set_what_they_promise_and_the_command_line_wins(tmp_path, option):
    cfg = make_cfg(tmp_path, f"debug={option}", "experiment=best")
    expected = DEBUG["fast"] | DEBUG[option]
    assert {key: OmegaConf.select(cfg, key) for key in expected} == expected  # over experiment=
    assert instantiate(cfg.trainer, logger=False).accelerator.__class__.__name__ == "CPUAccelerator"
    cfg = make_cfg(tmp_path, f"debug={option}", "trainer=ddp", "model.hidden_size=32")
    assert cfg.trainer.strategy._target_.endswith("HydraDDPStrategy")
    assert cfg.model.hidden_size == 32


@pytest.mark.parametrize("preset", ["tutorial", "article"])
def test_the_reproduction_presets_sum_the_loss_over_target_tokens(tmp_path, preset):
    """The tutorial's loop adds one loss per token: loss.reduction=sum reaches both losses."""
    from seq2seq_nmt.data.vocab import PAD

    criterion = instantiate(make_cfg(tmp_path, f"experiment={preset}").loss)(ignore_index=PAD)
    torch.manual_seed(0)
    logits, target = torch.randn(6, 9), torch.tensor([4, 5, PAD, 6, PAD, 7])
    mean = torch.nn.functional.cross_entropy(logits, target, ignore_index=PAD)
    assert torch.allclose(criterion(logits, target), 4 * mean)  # four real tokens


# experiment/shared/recipe.yaml, as command-line overrides
RECIPE = ["callbacks=[default,ema]", "batch_size=128", "model.bidirectional=true", "model.bridge=true",
          "optimizer.lr=0.0014", "loss.label_smoothing=0.1", "callbacks.ema.decay=0.998",
          "callbacks.ema.start_step=500", "trainer.max_epochs=30", "trainer.precision=bf16-mixed"]  # fmt: skip


@pytest.mark.parametrize(
    ("experiment", "data"),
    [
        ("best", ["dataset=both", "dataset.max_length=12", "dataset.prefixes=article"]),
        ("tatoeba_de_en", ["dataset=tatoeba", "tokenizer=sentencepiece", "dataset.src_lang=de",
                           "dataset.tgt_lang=en", "tokenizer.vocab_size=2000", "teacher_forcing_ratio=1.0"]),
    ],
)  # fmt: skip
def test_the_two_recipes_are_the_shared_file_plus_their_data(tmp_path, experiment, data):
    """experiment=best and tatoeba_de_en compose exactly as before they shared one file."""
    assert make_cfg(tmp_path, f"experiment={experiment}") == make_cfg(tmp_path, *data, *RECIPE)
    assert make_cfg(tmp_path, f"experiment={experiment}") != make_cfg(tmp_path, *data)
