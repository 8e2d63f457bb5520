"""Builds tiny, randomly initialised checkpoints offline, for tests.

Each builder makes a tokenizer on the spot with the ``tokenizers`` library, creates a
model with a few small layers from a ``transformers`` config (seeded, so the weights are the
same on every run), and saves both to a folder in the layout a real hub checkpoint has.
The tests then load these folders through the real loading code, exactly as a user's
``Reranker("./my-model")`` would.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

# A small English corpus with the vocabulary of the test queries and documents: the
# tokenizers' vocabularies are built from it, so the test texts are not unknown tokens.
CORPUS = [
    "what is a panda? The giant panda is a bear native to China.",
    "Pandas eat bamboo for most of the day and live in mountain forests.",
    "The red panda is not closely related to the giant panda.",
    "Paris is the capital and most populous city of France.",
    "The Eiffel Tower is a wrought-iron lattice tower in Paris.",
    "Python is a programming language that lets you work quickly.",
    "A python is a large snake found in Africa, Asia and Australia.",
    "Retrieval augmented generation combines search with a language model.",
    "A reranker scores each query and document pair with a cross-encoder.",
    "Dense retrieval embeds queries and passages into one vector space.",
    "ColBERT keeps one vector per token and scores with late interaction.",
    "Matryoshka embeddings can be truncated to fewer dimensions.",
    "The mitochondria is the powerhouse of the cell.",
    "Photosynthesis converts light energy into chemical energy in plants.",
    "The Amazon river flows through Brazil, Peru and Colombia.",
    "Mount Everest is the highest mountain above sea level.",
    "Shakespeare wrote Hamlet, Macbeth and many other plays.",
    "The speed of light in vacuum is about 300,000 kilometres per second.",
    "Who wrote Hamlet? When was the tower built? How tall is Everest?",
    "Yes or no: does the passage answer the query? Yes. No.",
    "Given a query A and a passage B, determine whether the passage contains an answer.",
    "Water boils at one hundred degrees Celsius at sea level.",
    "The quick brown fox jumps over the lazy dog 0 1 2 3 4 5 6 7 8 9.",
]
CORPUS = CORPUS * 4

BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
XLMR_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<bos>"]


def _corpus_words(normalizer, pre_tokenizer) -> list[str]:
    """The corpus words as the tokenizer splits them, most frequent first, ties alphabetical."""
    counts: dict[str, int] = {}
    for text in CORPUS:
        for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)):
            counts[word] = counts.get(word, 0) + 1
    return sorted(counts, key=lambda w: (-counts[w], w))


# The vocabularies are built, not trained: the Rust WordPiece and Unigram trainers break ties
# in hash-map order, which changes from one process to the next, and a test that passes with
# one vocabulary and fails with another is a flaky test. Corpus words are whole tokens; any
# other word splits into characters, so long unseen words still make real sub-words.
def _wordpiece_tokenizer() -> Tokenizer:
    normalizer = normalizers.BertNormalizer(lowercase=True)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    words = _corpus_words(normalizer, pre_tokenizer)
    chars = sorted({c for w in words for c in w})
    pieces = BERT_SPECIALS + chars + ["##" + c for c in chars] + [w for w in words if len(w) > 1]
    tok = Tokenizer(models.WordPiece({p: i for i, p in enumerate(pieces)}, unk_token="[UNK]"))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoders.WordPiece()
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    return tok


def _unigram_tokenizer() -> Tokenizer:
    """A SentencePiece-style tokenizer with the XLM-RoBERTa pair template ``<s> A </s></s> B </s>``."""
    normalizer = normalizers.NFKC()
    pre_tokenizer = pre_tokenizers.Metaspace()
    words = _corpus_words(normalizer, pre_tokenizer)
    chars = sorted({c for w in words for c in w} | {"\u2581"})
    vocab = [(p, 0.0) for p in XLMR_SPECIALS]
    vocab += [(w, -2.0 - 0.01 * rank) for rank, w in enumerate(words) if len(w) > 1]
    vocab += [(c, -8.0) for c in chars]
    tok = Tokenizer(models.Unigram(vocab, unk_id=XLMR_SPECIALS.index("<unk>")))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoders.Metaspace()
    bos, eos = tok.token_to_id("<s>"), tok.token_to_id("</s>")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", bos), ("</s>", eos)],
    )
    return tok


def _byte_bpe_tokenizer(vocab_size: int = 600) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        CORPUS,
        trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=QWEN_SPECIALS,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    return tok


def _tiny_bert_config(vocab_size: int, max_positions: int = 256, **kwargs):
    from transformers import BertConfig

    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=max_positions,
        **kwargs,
    )


def _bert_tokenizer(max_positions: int = 256):
    from transformers import BertTokenizerFast

    return BertTokenizerFast(
        tokenizer_object=_wordpiece_tokenizer(),
        unk_token="[UNK]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        mask_token="[MASK]",
        model_max_length=max_positions,
    )


def build_bert_cross_encoder(path: Path, num_labels: int = 1, seed: int = 0, max_positions: int = 256) -> Path:
    """A 2-layer BERT ``BertForSequenceClassification`` with ``num_labels`` logits."""
    from transformers import BertForSequenceClassification

    tokenizer = _bert_tokenizer(max_positions)
    torch.manual_seed(seed)
    model = BertForSequenceClassification(
        _tiny_bert_config(len(tokenizer), max_positions=max_positions, num_labels=num_labels)
    )
    model.eval()
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def build_xlmr_cross_encoder(path: Path, seed: int = 0) -> Path:
    """A 2-layer XLM-RoBERTa ``XLMRobertaForSequenceClassification`` (1 logit, bge-reranker layout)."""
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification, XLMRobertaTokenizerFast

    tokenizer = XLMRobertaTokenizerFast(
        tokenizer_object=_unigram_tokenizer(),
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        model_max_length=254,
    )
    torch.manual_seed(seed)
    config = XLMRobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=258,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        type_vocab_size=1,
        num_labels=1,
    )
    model = XLMRobertaForSequenceClassification(config)
    model.eval()
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def build_bi_encoder(path: Path, seed: int = 0, dropout: float = 0.1, max_positions: int = 256) -> Path:
    """A sentence-transformers folder: tiny BERT + mean pooling + Normalize (``max_positions``: a
    larger one makes a weights file of several MB, with the layers far from its start)."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Normalize, Pooling, Transformer
    from transformers import BertModel

    backbone = path.with_name(path.name + "-backbone")
    tokenizer = _bert_tokenizer()
    torch.manual_seed(seed)
    config = _tiny_bert_config(
        len(tokenizer), max_positions, hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout
    )
    BertModel(config, add_pooling_layer=False).save_pretrained(backbone)
    tokenizer.save_pretrained(backbone)
    transformer = Transformer(str(backbone), max_seq_length=128)
    model = SentenceTransformer(
        modules=[transformer, Pooling(transformer.get_embedding_dimension(), "mean"), Normalize()],
        device="cpu",
    )
    model.save(str(path))
    return path


CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _decoder_tokenizer(with_bos: bool = False, with_pad: bool = True):
    from transformers import PreTrainedTokenizerFast

    special = {"eos_token": "<|im_end|>"}
    if with_pad:
        special["pad_token"] = "<|endoftext|>"
    if with_bos:
        special["bos_token"] = "<bos>"
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=_byte_bpe_tokenizer(), model_max_length=512, **special)
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def _tiny_qwen2_config(tokenizer, num_layers: int = 2, hidden: int = 32, tie_word_embeddings: bool = False, **kwargs):
    from transformers import Qwen2Config

    return Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=tie_word_embeddings,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
        **kwargs,
    )


def _say_format(path: Path, model_type: str, prompt_format: str | None) -> None:
    """Our metadata naming the model's prompt format, as our trainer writes it."""
    if prompt_format is not None:
        from rag_retrieval_integrations.core import write_metadata

        write_metadata(path, model_type, reranker_options={"prompt_format": prompt_format})


def build_decoder_llm(
    path: Path,
    seed: int = 0,
    *,
    with_bos: bool = False,
    num_layers: int = 2,
    hidden: int = 32,
    tie_word_embeddings: bool = False,
    prompt_format: str | None = "bge-reranker-v2-gemma",
) -> Path:
    """A ``Qwen2ForCausalLM`` with a byte-level BPE tokenizer and a chat template.

    ``prompt_format``: the format our ``rag_retrieval.json`` says it reads (as for a checkpoint our
    trainer wrote); ``None``: a plain causal LM, whose format ``Reranker`` refuses to guess.

    ``with_bos`` gives the tokenizer a ``<bos>`` token (Gemma-style: FlagEmbedding's format
    then starts every input with it); ``tie_word_embeddings`` shares the LM head with the input
    embeddings, as SmolLM2, Qwen2-0.5B and Gemma do.
    """
    from transformers import Qwen2ForCausalLM

    tokenizer = _decoder_tokenizer(with_bos=with_bos)
    torch.manual_seed(seed)
    config = _tiny_qwen2_config(
        tokenizer, num_layers=num_layers, hidden=hidden, tie_word_embeddings=tie_word_embeddings
    )
    model = Qwen2ForCausalLM(config)
    model.eval()
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    _say_format(path, "llm", prompt_format)
    return path


def build_qwen3_reranker(path: Path, seed: int = 0, num_layers: int = 2, hidden: int = 32) -> Path:
    """A ``Qwen3ForCausalLM`` laid out as Qwen3-Reranker is (a plain causal LM, no metadata of ours),
    whose tokenizer has ``yes``/``no`` as single tokens and ``<think>``/``</think>`` and the chat
    markers as added tokens, as Qwen3's does."""
    from tokenizers import AddedToken
    from transformers import Qwen3Config, Qwen3ForCausalLM

    tokenizer = _decoder_tokenizer()
    tokenizer.add_tokens([AddedToken("yes", single_word=True), AddedToken("no", single_word=True)])
    tokenizer.add_tokens(["<think>", "</think>"], special_tokens=True)
    torch.manual_seed(seed)
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=hidden // 4,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    Qwen3ForCausalLM(config).eval().save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def build_decoder_classifier(path: Path, seed: int = 0, prompt_format: str | None = "bge-reranker-v2-gemma") -> Path:
    """A ``Qwen2ForSequenceClassification`` with a 1-logit head and a tokenizer without pad token
    (``prompt_format``: as for :func:`build_decoder_llm`)."""
    from transformers import Qwen2ForSequenceClassification

    tokenizer = _decoder_tokenizer(with_pad=False)
    torch.manual_seed(seed)
    model = Qwen2ForSequenceClassification(_tiny_qwen2_config(tokenizer, num_labels=1))
    model.eval()
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    _say_format(path, "llm-classifier", prompt_format)
    return path


LAYERWISE_MODELING = '''
"""A tiny layerwise reranker in the style of bge-reranker-v2-minicpm-layerwise (remote code)."""
import torch
from torch import nn
from transformers import Qwen2Config, Qwen2Model, Qwen2PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast


class LayerwiseQwen2Config(Qwen2Config):
    model_type = "layerwise_qwen2"


class LayerwiseQwen2ForCausalLM(Qwen2PreTrainedModel):
    config_class = LayerwiseQwen2Config

    def __init__(self, config):
        super().__init__(config)
        self.model = Qwen2Model(config)
        # one 1-logit head per layer, as minicpm-layerwise's "simple" head type
        self.lm_head = nn.ModuleList([nn.Linear(config.hidden_size, 1) for _ in range(config.num_hidden_layers)])
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, cutoff_layers=None,
                output_hidden_states=True, **kwargs):
        layers = cutoff_layers or [self.config.num_hidden_layers]
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                         output_hidden_states=True, use_cache=False)
        logits = tuple(
            self.lm_head[i - 1](self.model.norm(out.hidden_states[i])).squeeze(-1) for i in layers
        )
        return CausalLMOutputWithPast(logits=logits)
'''


def build_native_layerwise(path: Path, seed: int = 0) -> Path:
    """A remote-code checkpoint whose forward takes ``cutoff_layers`` and has one head per layer."""
    import importlib.util
    import json
    import sys

    path.mkdir(parents=True, exist_ok=True)
    (path / "modeling_layerwise.py").write_text(LAYERWISE_MODELING)
    spec = importlib.util.spec_from_file_location(f"_layerwise_{seed}", path / "modeling_layerwise.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    tokenizer = _decoder_tokenizer()
    base = _tiny_qwen2_config(tokenizer, num_layers=3)
    config = module.LayerwiseQwen2Config(**base.to_dict())
    config.auto_map = {
        "AutoConfig": "modeling_layerwise.LayerwiseQwen2Config",
        "AutoModelForCausalLM": "modeling_layerwise.LayerwiseQwen2ForCausalLM",
    }
    torch.manual_seed(seed)
    model = module.LayerwiseQwen2ForCausalLM(config)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    saved = json.loads((path / "config.json").read_text())
    saved["architectures"] = ["LayerwiseQwen2ForCausalLM"]
    (path / "config.json").write_text(json.dumps(saved, indent=2))
    return path


def build_masked_lm(path: Path, seed: int = 0) -> Path:
    """A 2-layer ``BertForMaskedLM``: the kind of checkpoint SPLADE starts from (naver/splade's bases)."""
    from transformers import BertForMaskedLM

    tokenizer = _bert_tokenizer()
    torch.manual_seed(seed)
    model = BertForMaskedLM(_tiny_bert_config(len(tokenizer)))
    model.eval()
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def build_splade(path: Path, seed: int = 0) -> Path:
    """A sentence-transformers ``SparseEncoder`` folder laid out as SPLADE: ``MLMTransformer`` +
    ``SpladePooling("max")`` over a tiny masked LM (as naver/splade-v3)."""
    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder.models import MLMTransformer, SpladePooling

    backbone = build_masked_lm(path.with_name(path.name + "-mlm"), seed=seed)
    mlm = MLMTransformer(str(backbone), max_seq_length=128)
    model = SparseEncoder(modules=[mlm, SpladePooling("max", embedding_dimension=mlm.get_embedding_dimension())])
    model.save(str(path))
    return path
