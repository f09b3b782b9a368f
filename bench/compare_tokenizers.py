"""Words against subwords on the same unseen test sentences, scored as published figures are.

    python bench/compare_tokenizers.py --words NAME --subwords NAME [--beam 5]

Each NAME is a ``bench/time_to_bleu.py`` run (``bench/results/time_to_bleu-NAME.json`` gives its
overrides and best checkpoint). The two runs clean their text differently, so their splits
differ: the test set here is the subword run's test split minus the pairs whose source or
target, cleaned the words run's way, occurs in the words run's training split. Neither model has
seen any of its sentences. Both outputs are scored with sacrebleu (13a, cased) against the raw
references; the words model's output also as its own log scores it (references cleaned like
its training targets), which is not comparable with published figures. Writes
``bench/results/compare_tokenizers-WORDS-SUBWORDS.json``.
"""

import argparse
import json

from benchlib import BENCH_DATA, ROOT, compose, describe_machine
from hydra.utils import instantiate

from seq2seq_nmt.data.normalize import get_normalizer
from seq2seq_nmt.metrics import corpus_bleu
from seq2seq_nmt.translate.translator import Translator

RESULTS = ROOT / "bench" / "results"


def load_run(name: str):
    """The run's config, its datamodule (set up from the cache) and its best checkpoint's translator."""
    summary = json.loads((RESULTS / f"time_to_bleu-{name}.json").read_text())
    cfg = compose(
        ROOT / "outputs" / "compare_tokenizers" / name, *BENCH_DATA, *summary["overrides"]
    )
    datamodule = instantiate(cfg.dataset)
    datamodule.setup("test")
    return cfg, datamodule, Translator.from_checkpoint(ROOT / summary["best_checkpoint"])


def unseen_test(words, subwords) -> tuple[list[str], list[str], int]:
    """The subword run's test sources and raw references that the words run never trained on,
    and how many pairs were left out."""
    test = subwords.datasets["test"]
    sources = [subwords.src_tokenizer.decode(ids) for ids in test.src]
    clean = get_normalizer(words.normalization)
    train = words.datasets["train"]
    seen_src = {words.src_tokenizer.decode(ids) for ids in train.src}
    seen_tgt = {words.tgt_tokenizer.decode(ids) for ids in train.tgt}
    keep = [
        i
        for i, (src, ref) in enumerate(zip(sources, test.refs, strict=True))
        if clean(src) not in seen_src and clean(ref) not in seen_tgt
    ]
    return [sources[i] for i in keep], [test.refs[i] for i in keep], len(sources) - len(keep)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--words", required=True, help="time_to_bleu run name, tokenizer=words")
    parser.add_argument("--subwords", required=True, help="time_to_bleu run name, sentencepiece")
    parser.add_argument("--beam", type=int, default=5)
    args = parser.parse_args()

    words_cfg, words_dm, words = load_run(args.words)
    _, subwords_dm, subwords = load_run(args.subwords)
    if words.subwords or not subwords.subwords:
        raise SystemExit(
            "error: --words needs a tokenizer=words run, --subwords a sentencepiece one"
        )
    sources, refs, left_out = unseen_test(words_dm, subwords_dm)
    clean = get_normalizer(words_dm.normalization)
    scores, signature = {}, None
    for beam in sorted({1, args.beam}):
        search = "greedy" if beam == 1 else f"beam {beam}"
        for name, translator in (("words", words), ("sentencepiece", subwords)):
            hyps = translator.translate(sources, beam_size=beam)
            scores[f"{name} {search}"], signature = corpus_bleu(hyps, refs)
            if name == "words":
                own = corpus_bleu(hyps, [clean(r) for r in refs])[0]
                scores[f"words {search}, against cleaned references (its log's measure)"] = own
    result = {
        "machine": describe_machine(words_cfg), "words": args.words, "subwords": args.subwords,
        "test_pairs": len(refs), "left_out_seen_by_words": left_out,
        "bleu": scores, "signature": signature,
    }  # fmt: skip
    out = RESULTS / f"compare_tokenizers-{args.words}-{args.subwords}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
