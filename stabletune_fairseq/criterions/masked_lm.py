"""``stabletune_mlm``: cross-entropy of the masked tokens, for the ``lm`` head of a ``stabletune_xlmr`` model.

What is logged (fairseq's convention, as its own ``masked_lm`` criterion): ``loss`` is the cross-entropy in bits
per masked token, summed over every masked token of the subset and divided by their number and ln 2; ``ppl`` is
2 ** loss, the perplexity of the masked tokens. The Longformer conversion notebook calls the same number "bpc"; it
is per masked *token* (sentencepiece piece), not per character. ``masked_lm_sums`` is shared with
``stabletune-mlm-eval``, so both measure the same thing.
"""

import math

import torch
import torch.nn.functional as F
from fairseq import metrics, utils
from fairseq.criterions import FairseqCriterion, register_criterion


def masked_lm_sums(model, sample, padding_idx: int) -> tuple[torch.Tensor, int]:
    """(summed cross-entropy in nats over the masked tokens, their number)."""
    target = sample["target"]
    masked = target.ne(padding_idx)
    count = int(masked.sum())
    if count == 0:  # a batch of tiny blocks can draw no mask: one ignored position keeps the graph whole
        masked = masked.clone()
        masked[:, 0] = True
    logits = model(sample["net_input"]["src_tokens"], head="lm", masked_tokens=masked)
    loss = F.cross_entropy(logits.float(), target[masked], reduction="sum", ignore_index=padding_idx)
    return loss, count


@register_criterion("stabletune_mlm")
class StabletuneMLMCriterion(FairseqCriterion):
    def forward(self, model, sample, reduce=True):
        loss, count = masked_lm_sums(model, sample, self.padding_idx)
        logging_output = {
            "loss": loss.detach(),
            "ntokens": sample["ntokens"],
            "nsentences": sample["nsentences"],
            "sample_size": count,
        }
        return loss, count, logging_output

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        loss = sum(float(log.get("loss", 0)) for log in logging_outputs)
        masked = sum(log.get("sample_size", 0) for log in logging_outputs)
        metrics.log_scalar("loss", loss / max(masked, 1) / math.log(2), masked, round=4)
        metrics.log_scalar_sum("masked_tokens", masked, priority=900, round=0)
        metrics.log_derived("ppl", lambda meters: utils.get_perplexity(meters["loss"].avg))

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True
