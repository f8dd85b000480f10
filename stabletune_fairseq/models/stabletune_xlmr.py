"""``stabletune_xlmr``: the XLM-R (RoBERTa) encoder with task heads.

The encoder is fairseq's own ``TransformerEncoderBase`` configured as RoBERTa/XLM-R (post-norm layers,
learned positions offset by the padding index, an embedding layer norm, no embedding scaling), under
the parameter names of an official XLM-R checkpoint (``encoder.sentence_encoder.*``), so pretrained
weights load by name. We do not subclass ``RobertaModel``: it carries an LM head we never train, and
its checkpoint upgrade code assumes every head has ``dense`` and ``out_proj``. Heads live in
``model.heads`` and are created by the task before a checkpoint is loaded.

Our own ``forward`` embeds the tokens itself so noise can be added to the token embeddings (``noise``, see
``EmbeddingNoise``); fairseq's RoBERTa forward would silently ignore ``token_embeddings=``. It also runs the layers
itself (time first, as fairseq) with the attention of ``attention.py`` (torch's scaled_dot_product_attention on the same
``self_attn`` weights): full attention, or with ``--attention-window W`` Longformer-style sliding-window attention
with global tokens for inputs past 512 tokens (docs/long-context.md). fairseq's own layer forward computes the same
full attention (tested to 1e-5); it is not used because it cannot take a windowed pattern without an L x L mask.
"""

from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn as nn
from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from fairseq.models import FairseqEncoder, FairseqEncoderModel, register_model, register_model_architecture
from fairseq.models.transformer import TransformerConfig, TransformerEncoderBase
from fairseq.modules.transformer_sentence_encoder import init_bert_params
from fairseq.utils import safe_getattr
from omegaconf import II

from .attention import AttentionPattern, self_attention
from .heads import HEAD_TYPES


@dataclass(frozen=True)
class EmbeddingNoise:
    """Noise added to the token embeddings of some rows of a batch (the views of R1).

    ``kind`` "normal": N(0, scale²) (xTune's Gaussian noise); "uniform": U(-scale, scale) (R3F's default).
    ``detached``: the noised rows' embeddings are cut from the graph first, so they do not train the embeddings
    (R3F adds its noise to ``embeddings.detach()``). ``rows``: boolean, the rows that get noise (None: every row).
    """

    scale: float
    kind: str = "normal"
    detached: bool = False

    def apply(self, embeddings: torch.Tensor, rows: Optional[torch.Tensor] = None) -> torch.Tensor:
        if self.kind == "normal":
            noise = torch.randn_like(embeddings) * self.scale
        elif self.kind == "uniform":
            noise = (torch.rand_like(embeddings) * 2 - 1) * self.scale
        else:
            raise ValueError(f"unknown noise kind {self.kind!r} (normal or uniform)")
        mask = torch.ones_like(embeddings[:, :1, :1]) if rows is None else rows.view(-1, 1, 1).to(embeddings)
        base = embeddings.detach() * mask + embeddings * (1 - mask) if self.detached else embeddings
        return base + noise * mask


@dataclass
class StabletuneXLMRConfig(FairseqDataclass):
    encoder_layers: int = field(default=12, metadata={"help": "number of transformer layers"})
    encoder_embed_dim: int = field(default=768, metadata={"help": "hidden size"})
    encoder_ffn_embed_dim: int = field(default=3072, metadata={"help": "feed-forward inner size"})
    encoder_attention_heads: int = field(default=12, metadata={"help": "attention heads per layer"})
    max_positions: int = field(
        default=512, metadata={"help": "rows of the learned position table (without the 2 offset rows)"}
    )
    activation_fn: ChoiceEnum(["gelu", "relu", "gelu_accurate"]) = field(
        default="gelu", metadata={"help": "feed-forward activation"}
    )
    dropout: float = field(default=0.1, metadata={"help": "dropout on hidden states"})
    attention_dropout: float = field(default=0.1, metadata={"help": "dropout on attention weights"})
    activation_dropout: float = field(default=0.0, metadata={"help": "dropout after the feed-forward activation"})
    head_dropout: float = field(default=0.1, metadata={"help": "dropout inside the task heads"})
    attention_window: int = field(
        default=0,
        metadata={
            "help": "0: full attention. W > 0 (even): Longformer-style sliding-window attention, each token "
            "attends to the tokens within W/2 on each side and to the global tokens (<s>, and what the "
            "task marks global, e.g. a QA question); global tokens attend to every token. Memory then "
            "grows linearly with the input length (docs/long-context.md)"
        },
    )
    freeze_embeddings: bool = field(
        default=False,
        metadata={
            "help": "keep the word embeddings fixed: a quarter of XLM-R base's parameters (most of a small "
            "model's) are then not updated, which is much cheaper on CPU"
        },
    )
    embedding_bottleneck: int = field(
        default=0,
        metadata={
            "help": "0: a vocabulary x hidden token table (XLM-R). d > 0: a factorised table, vocabulary x d then a "
            "d -> hidden linear map without bias (ALBERT's; the multi-stage distillation framework's bottleneck "
            "embedding layer, docs/compressed-students.md). Hugging Face's XLM-R cannot represent it (no export)"
        },
    )
    layer_repeat: int = field(
        default=1,
        metadata={
            "help": "run the encoder's --encoder-layers distinct layers this many times in turn (parameter "
            "recurrence: k layers run r times compute like k x r layers with the parameters of k; the framework's "
            "stage 3). 1: each layer once (XLM-R). Hugging Face's XLM-R cannot represent r > 1 (no export)"
        },
    )
    pretrained_encoder: Optional[str] = field(
        default=None,
        metadata={
            "help": "official-format XLM-R model.pt whose encoder initialises the model; used only when "
            "the save dir holds no checkpoint_last.pt, so re-running a command resumes instead"
        },
    )
    init_checkpoint: Optional[str] = field(
        default=None,
        metadata={
            "help": "a fine-tuned checkpoint of this task folder (ours: same task, labels, vocabulary and data) "
            "whose weights, task head included, initialise the model instead of --pretrained-encoder's "
            "(BERT-gang's train_kd_from_ckpt: e.g. KD after an SCL run); the optimiser, schedule and update "
            "count start afresh. Used only when the save dir holds no checkpoint_last.pt"
        },
    )
    save_dir: str = II("checkpoint.save_dir")


def _encoder_config(cfg) -> TransformerConfig:
    """The TransformerConfig that makes fairseq's encoder an XLM-R encoder."""
    tc = TransformerConfig()
    tc.encoder.layers = cfg.encoder_layers
    tc.encoder.embed_dim = cfg.encoder_embed_dim
    tc.encoder.ffn_embed_dim = cfg.encoder_ffn_embed_dim
    tc.encoder.attention_heads = cfg.encoder_attention_heads
    tc.encoder.learned_pos = True
    tc.encoder.normalize_before = False
    tc.max_source_positions = cfg.max_positions
    tc.layernorm_embedding = True
    tc.no_scale_embedding = True
    tc.activation_fn = cfg.activation_fn
    tc.dropout = cfg.dropout
    tc.attention_dropout = cfg.attention_dropout
    tc.activation_dropout = cfg.activation_dropout
    return tc


def _post_norm_layer(layer, x: torch.Tensor, pattern: AttentionPattern, first_position_only: bool = False):
    """fairseq's post-norm ``TransformerEncoderLayerBase`` forward (time x batch x hidden, as fairseq) with our
    attention; ``first_position_only``: position 0 alone is computed (1 x batch x hidden out; keys and values from
    every position)."""
    residual = x[:1] if first_position_only else x
    h = self_attention(layer.self_attn, x, pattern, first_position_only)
    h = layer.self_attn_layer_norm(layer.residual_connection(layer.dropout_module(h), residual))
    out = layer.fc2(layer.activation_dropout_module(layer.activation_fn(layer.fc1(h))))
    return layer.final_layer_norm(layer.residual_connection(layer.dropout_module(out), h))


def first_segment(src_tokens: torch.Tensor, eos: int) -> torch.Tensor:
    """Boolean batch x time: the tokens before a row's first ``</s>`` (``<s>`` and, for QA, the question)."""
    return src_tokens.eq(eos).int().cumsum(dim=1).eq(0)


class FactorisedEmbedding(nn.Module):
    """A vocabulary x ``bottleneck`` token table then a ``bottleneck`` -> ``hidden`` linear map without bias (ALBERT's
    factorised embedding; the multi-stage framework's ``Small_Embeddings``: ``word_embeddings`` then
    ``word_embeddings_2``). ``weight`` is the table, so freezing and the vocabulary checks see it as they see a plain
    table; ``embedding_dim`` is the hidden width, which is what fairseq's encoder and our callers read."""

    def __init__(self, rows: int, bottleneck: int, hidden: int, padding_idx: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(rows, bottleneck))
        self.projection = nn.Linear(bottleneck, hidden, bias=False)
        self.num_embeddings, self.embedding_dim, self.padding_idx = rows, hidden, padding_idx
        nn.init.normal_(self.weight, mean=0.0, std=0.02)  # init_bert_params' embedding init; it skips this module
        with torch.no_grad():
            self.weight[padding_idx].zero_()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.projection(nn.functional.embedding(tokens, self.weight, self.padding_idx))


def compression_settings(cfg) -> tuple[int, int]:
    """(embedding bottleneck, layer repeat) of a model config; checkpoints written before the options: (0, 1)."""
    bottleneck = int(safe_getattr(cfg, "embedding_bottleneck", 0) or 0)
    repeat = int(safe_getattr(cfg, "layer_repeat", 1) or 1)
    if bottleneck < 0 or repeat < 1:
        raise ValueError(f"--embedding-bottleneck {bottleneck} (>= 0) / --layer-repeat {repeat} (>= 1)")
    return bottleneck, repeat


class XLMREncoder(FairseqEncoder):
    """Holds ``sentence_encoder`` so parameter names match official XLM-R checkpoints."""

    def __init__(self, cfg, dictionary):
        super().__init__(dictionary)
        bottleneck, self.layer_repeat = compression_settings(cfg)
        if bottleneck:
            embed_tokens = FactorisedEmbedding(len(dictionary), bottleneck, cfg.encoder_embed_dim, dictionary.pad())
        else:
            embed_tokens = nn.Embedding(len(dictionary), cfg.encoder_embed_dim, dictionary.pad())
        self.sentence_encoder = TransformerEncoderBase(_encoder_config(cfg), dictionary, embed_tokens)
        self.sentence_encoder.apply(init_bert_params)
        if cfg.freeze_embeddings:
            embed_tokens.weight.requires_grad_(False)
        self.max_tokens = cfg.max_positions
        # checkpoints written before the option existed have no attention_window: full attention
        self.attention_window = safe_getattr(cfg, "attention_window", 0) or 0
        # "auto": blocked windows once the input spans more than 2 W, else one dense mask (attention.py);
        # "dense" / "blocked" force one (benchmarks/long_attention.py compares them)
        self.attention_implementation = "auto"
        if self.attention_window < 0 or self.attention_window % 2:
            raise ValueError(
                f"--attention-window {self.attention_window}: an even number of tokens (W/2 on each "
                "side of a token), or 0 for full attention"
            )

    def forward(
        self,
        src_tokens,
        noise: Optional[EmbeddingNoise] = None,
        noise_rows=None,
        first_position_only: bool = False,
        layer_states: Optional[list] = None,
        global_positions: Optional[torch.Tensor] = None,
        first_global: bool = True,
        num_layers: Optional[int] = None,
        **unused,
    ) -> torch.Tensor:
        """Final hidden states, batch x time x hidden. ``noise`` is added to the token embeddings of every row,
        or only of the rows where the boolean ``noise_rows`` is true.
        ``first_position_only``: batch x 1 x hidden, the ``<s>`` state alone: the last layer is computed for
        position 0 only (a sentence head reads nothing else; the last layer's queries, attention output and
        feed-forward at the other positions are about 7% of a 12-layer encoder's matrix products).
        ``layer_states``: a list that receives the ``<s>`` state (batch x hidden) after every layer, the last
        layer's last (what distillation compares).
        ``global_positions``: boolean, batch x time: tokens that get global attention under ``--attention-window``
        (``<s>`` too unless ``first_global`` is False); ignored with full attention.
        ``num_layers``: the states after that many layer applications (0: the embedding layer's output); None: all
        of them, the distinct layers run ``layer_repeat`` times in turn."""
        embeddings = self.sentence_encoder.embed_tokens(src_tokens)
        if noise is not None and noise.scale > 0:
            embeddings = noise.apply(embeddings, noise_rows)
        encoder = self.sentence_encoder
        padding = src_tokens.eq(encoder.padding_idx)
        x, _ = encoder.forward_embedding(src_tokens, embeddings)
        x = (x * (1 - padding.unsqueeze(-1).type_as(x))).transpose(0, 1)  # time first, padding zeroed as fairseq does
        pattern = AttentionPattern.build(
            src_tokens,
            padding if padding.any() else None,
            self.attention_window,
            global_positions,
            self.attention_implementation,
            first_global,
        )
        schedule = list(encoder.layers) * self.layer_repeat  # the same modules again: parameter recurrence
        if num_layers is not None:
            schedule = schedule[:num_layers]
        last = len(schedule) - 1
        for i, layer in enumerate(schedule):
            x = _post_norm_layer(layer, x, pattern, first_position_only and i == last)
            if layer_states is not None:
                layer_states.append(x[0])
        if encoder.layer_norm is not None:  # pre-norm encoders only; XLM-R has none
            x = encoder.layer_norm(x)
        return x.transpose(0, 1)

    def max_positions(self):
        return self.max_tokens


@register_model("stabletune_xlmr", dataclass=StabletuneXLMRConfig)
class StabletuneXLMRModel(FairseqEncoderModel):
    def __init__(self, cfg, encoder: XLMREncoder):
        super().__init__(encoder)
        self.cfg = cfg
        self.heads = nn.ModuleDict()

    @classmethod
    def build_model(cls, cfg, task):
        return cls(cfg, XLMREncoder(cfg, task.source_dictionary))

    def add_head(self, name: str, kind: str, num_outputs: int) -> None:
        """Create head ``name`` (a ``HEAD_TYPES`` kind) unless an identical one exists."""
        if name in self.heads:
            if self.heads[name].out_proj.out_features != num_outputs:
                raise ValueError(
                    f"head {name!r} exists with {self.heads[name].out_proj.out_features} outputs, not {num_outputs}"
                )
            return
        head = HEAD_TYPES[kind](self.cfg.encoder_embed_dim, num_outputs, self.cfg.head_dropout)
        head.apply(init_bert_params)
        self.heads[name] = head

    def forward(
        self,
        src_tokens,
        head: str,
        noise: Optional[EmbeddingNoise] = None,
        noise_rows=None,
        layer_states: Optional[list] = None,
        global_positions: Optional[torch.Tensor] = None,
        **kwargs,
    ) -> torch.Tensor:
        """Logits of ``head`` for a right-padded batch of ``src_tokens`` (see ``XLMREncoder.forward`` for noise,
        ``layer_states`` and ``global_positions``)."""
        first_position_only = getattr(self.heads[head], "reads_first_position_only", False)
        if (
            global_positions is None
            and self.encoder.attention_window
            and getattr(self.heads[head], "global_first_segment", False)
        ):
            global_positions = first_segment(src_tokens, self.encoder.dictionary.eos())
        # the head says whether <s> is global under a window (every head but the masked-LM one: heads.py)
        first_global = getattr(self.heads[head], "global_first_token", True)
        features = self.encoder(
            src_tokens,
            noise=noise,
            noise_rows=noise_rows,
            first_position_only=first_position_only,
            layer_states=layer_states,
            global_positions=global_positions,
            first_global=first_global,
        )
        return self.heads[head](features, **kwargs)

    def extract_features(
        self, src_tokens, noise: Optional[EmbeddingNoise] = None, global_positions: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        return self.encoder(src_tokens, noise=noise, global_positions=global_positions)

    def max_positions(self):
        return self.encoder.max_positions()


def _set_shape(cfg, layers, dim, ffn, heads):
    cfg.encoder_layers = safe_getattr(cfg, "encoder_layers", layers)
    cfg.encoder_embed_dim = safe_getattr(cfg, "encoder_embed_dim", dim)
    cfg.encoder_ffn_embed_dim = safe_getattr(cfg, "encoder_ffn_embed_dim", ffn)
    cfg.encoder_attention_heads = safe_getattr(cfg, "encoder_attention_heads", heads)


@register_model_architecture("stabletune_xlmr", "stabletune_xlmr_base")
def xlmr_base(cfg):
    _set_shape(cfg, 12, 768, 3072, 12)


@register_model_architecture("stabletune_xlmr", "stabletune_xlmr_large")
def xlmr_large(cfg):
    _set_shape(cfg, 24, 1024, 4096, 16)


@register_model_architecture("stabletune_xlmr", "stabletune_xlmr_e5_small")
def e5_small(cfg):
    """multilingual-e5-small, the embedded default model (README, docs/architecture.md)."""
    _set_shape(cfg, 12, 384, 1536, 12)
