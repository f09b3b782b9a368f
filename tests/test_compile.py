"""``model.compile``: the decoder step through torch.compile gives the eager logits and
gradients for every attention, and a compiled run trains and resumes."""

import pytest
import torch

from helpers import make_cfg
from seq2seq_nmt.data.vocab import EOS, PAD, SOS
from seq2seq_nmt.decoding.search import greedy, output_limits
from seq2seq_nmt.model import ATTENTIONS, Seq2Seq
from seq2seq_nmt.train.run import train

# inductor reorders float sums (fused kernels): equal to float32 rounding, not bit for bit
TOLERANCE = {"atol": 1e-5, "rtol": 1e-4}


def batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    src = torch.tensor([[5, 6, EOS, PAD, PAD], [7, 8, 9, 10, EOS], [11, EOS, PAD, PAD, PAD]])
    tgt_in = torch.tensor([[SOS, 4, 5, PAD], [SOS, 6, 7, 8], [SOS, 9, PAD, PAD]])
    return src, torch.tensor([3, 5, 2]), tgt_in


@pytest.mark.slow
@pytest.mark.parametrize("attention", list(ATTENTIONS))
def test_compiled_step_gives_the_eager_logits_and_gradients(attention):
    torch.manual_seed(0)
    kw = {"emb_size": 16, "hidden_size": 16, "dropout": 0.0, "max_length": 8}
    eager = Seq2Seq(20, 22, attention=attention, **kw)
    compiled = Seq2Seq(20, 22, attention=attention, compile=True, **kw)
    compiled.load_state_dict(eager.state_dict())
    src, src_len, tgt_in = batch()
    outputs = []
    for net in (eager, compiled):
        logits, attn = net(src, src_len, tgt_in)
        logits.logsumexp(-1).sum().backward()
        grads = [p.grad.clone() for p in net.parameters()]
        with torch.no_grad():
            tokens = greedy(net.eval(), src, src_len, output_limits(src_len))[0]
        outputs.append((logits.detach(), attn.detach(), grads, tokens))
    (logits_e, attn_e, grads_e, tok_e), (logits_c, attn_c, grads_c, tok_c) = outputs
    assert set(compiled._compiled_steps) == {"cpu"} and not eager._compiled_steps
    torch.testing.assert_close(logits_c, logits_e, **TOLERANCE)
    torch.testing.assert_close(attn_c, attn_e, **TOLERANCE)
    for g_c, g_e in zip(grads_c, grads_e, strict=True):
        torch.testing.assert_close(g_c, g_e, **TOLERANCE)
    assert torch.equal(tok_c, tok_e)


@pytest.mark.slow
def test_a_compiled_run_trains_and_resumes(tmp_path):
    common = ["debug=fast", "logger=csv", "model.compile=true", "test=false",
              "model.emb_size=16", "model.hidden_size=16", "trainer.limit_train_batches=4",
              "trainer.limit_val_batches=1"]  # fmt: skip
    first = train(make_cfg(tmp_path, *common, "trainer.max_epochs=1"))
    assert torch.isfinite(torch.tensor(first["train/loss"]))
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == 4
    second = train(make_cfg(tmp_path, *common, "trainer.max_epochs=2", "ckpt_path=last"))
    assert torch.load(last, weights_only=True)["global_step"] == 8
    assert torch.isfinite(torch.tensor(second["train/loss"]))
    assert "compile" not in torch.load(last, weights_only=True)["nmt"]["model"]
