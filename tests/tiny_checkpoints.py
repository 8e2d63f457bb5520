"""Builds tiny, randomly initialised checkpoints offline, for tests.

Each builder trains a tokenizer on the spot with the ``tokenizers`` library, creates a
model with a few small layers from a ``transformers`` config (seeded, so the weights are the
same on every run), and saves both to a folder in the layout a real hub checkpoint has.
The tests then load these folders through the real loading code, exactly as a user's
``Reranker("./my-model")`` would.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

# A small English corpus with the vocabulary of the test queries and documents: tokenizers
# trained on it split the test texts into real sub-words rather than unknown tokens.
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
QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def _wordpiece_tokenizer(vocab_size: int = 400) -> Tokenizer:
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.train_from_iterator(CORPUS, trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=BERT_SPECIALS))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    return tok


def _unigram_tokenizer(vocab_size: int = 400) -> Tokenizer:
    """A SentencePiece-style tokenizer with the XLM-RoBERTa pair template ``<s> A </s></s> B </s>``."""
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(
        CORPUS, trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=XLMR_SPECIALS, unk_token="<unk>")
    )
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


def _tiny_bert_config(vocab_size: int, **kwargs):
    from transformers import BertConfig

    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=256,
        **kwargs,
    )


def _bert_tokenizer():
    from transformers import BertTokenizerFast

    return BertTokenizerFast(
        tokenizer_object=_wordpiece_tokenizer(),
        unk_token="[UNK]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        mask_token="[MASK]",
        model_max_length=256,
    )


def build_bert_cross_encoder(path: Path, num_labels: int = 1, seed: int = 0) -> Path:
    """A 2-layer BERT ``BertForSequenceClassification`` with ``num_labels`` logits."""
    from transformers import BertForSequenceClassification

    tokenizer = _bert_tokenizer()
    torch.manual_seed(seed)
    model = BertForSequenceClassification(_tiny_bert_config(len(tokenizer), num_labels=num_labels))
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


def build_bi_encoder(path: Path, seed: int = 0) -> Path:
    """A sentence-transformers folder: tiny BERT + mean pooling + Normalize."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Normalize, Pooling, Transformer
    from transformers import BertModel

    backbone = path.with_name(path.name + "-backbone")
    tokenizer = _bert_tokenizer()
    torch.manual_seed(seed)
    BertModel(_tiny_bert_config(len(tokenizer)), add_pooling_layer=False).save_pretrained(backbone)
    tokenizer.save_pretrained(backbone)
    transformer = Transformer(str(backbone), max_seq_length=128)
    model = SentenceTransformer(
        modules=[transformer, Pooling(transformer.get_embedding_dimension(), "mean"), Normalize()],
        device="cpu",
    )
    model.save(str(path))
    return path


def build_decoder_llm(path: Path, seed: int = 0) -> Path:
    """A 2-layer ``Qwen2ForCausalLM`` with a byte-level BPE tokenizer and a chat template."""
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=_byte_bpe_tokenizer(),
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        model_max_length=512,
    )
    tokenizer.chat_template = (
        "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=False,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = Qwen2ForCausalLM(config)
    model.eval()
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
