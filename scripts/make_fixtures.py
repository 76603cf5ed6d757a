#!/usr/bin/env python3
"""Builds the reference fixtures that Saker's CPU path is checked against, with Hugging Face
transformers (an independent implementation). Run on the GPU machine (it has torch and
transformers; the `gguf` wheel travels in .whl/):

    python3 scripts/make_fixtures.py --out tests/fixtures [--smollm2 PATH.gguf]

Writes, for each tiny random-weight model, a Hugging Face directory tests/fixtures/hf-<name>/
(config.json, model.safetensors, tokenizer.json, tokenizer_config.json) plus reference.json:
{"tokens": [...], "n_vocab": V, "logits": [[...V floats...], ...]} computed by transformers in
float32 (eager attention, TF32 off) from the saved checkpoint. For SmolLM2-135M (loaded from its
GGUF by transformers + gguf), smollm2_logits.json holds logits for a few token sequences
(every 8th vocabulary column plus each row's top 64, as [id, value] pairs, to keep the file small)
and smollm2_tokens.json the ids HF tokenizers gives for a set of texts, and smollm2_chat.json the
chat template rendered by transformers' apply_chat_template (Jinja2).
"""
import argparse
import json
import os
import sys

import torch

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False

TEXT = (
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. "
    "One day, she saw a big, red ball. def f(x):\n    return x ** 2  # 3.14159 and 1,000,000\n"
    "Café naïve résumé 你好，世界 日本語 😀👍 tabs\tand\nnewlines\r\n  spaces   here\n"
)


def train_tokenizer(path, vocab_size):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([TEXT] * 20, trainer=trainer)
    tok.save(os.path.join(path, "tokenizer.json"))
    with open(os.path.join(path, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": "<|endoftext|>", "eos_token": "<|im_end|>", "add_bos_token": False,
                   "chat_template": "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"}, f)
    return tok.get_vocab_size()


def randomize(model, seed):
    """HF init (std 0.02) makes logits nearly flat; draw weights of trained-like scale instead."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                if name.endswith("bias"):
                    p.copy_(0.1 * torch.randn(p.shape, generator=g))
                else:
                    p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif "embed" in name or "word_embeddings" in name:
                p.copy_(torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) / (p.shape[1] ** 0.5))


def make_tiny(out, name, cfg_cls, model_cls, cfg, dtype, seed):
    d = os.path.join(out, "hf-" + name)
    os.makedirs(d, exist_ok=True)
    vocab = train_tokenizer(d, 300)
    cfg["vocab_size"] = vocab
    config = cfg_cls(**cfg)
    config._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = model_cls(config)
    randomize(model, seed)
    model = model.to(dtype)
    model.save_pretrained(d, safe_serialization=True)
    # Reload from disk in float32 so the reference sees exactly the stored (rounded) weights.
    ref = model_cls.from_pretrained(d, torch_dtype=torch.float32, attn_implementation="eager")
    ref.eval()
    g = torch.Generator().manual_seed(seed + 1)
    tokens = torch.randint(0, vocab, (23,), generator=g).tolist()
    with torch.no_grad():
        logits = ref(torch.tensor([tokens])).logits[0].float()
    with open(os.path.join(d, "reference.json"), "w") as f:
        json.dump({"model": name, "dtype": str(dtype), "tokens": tokens, "n_vocab": vocab,
                   "logits": logits.tolist()}, f)
    for fn in os.listdir(d):
        if fn == "generation_config.json":
            os.remove(os.path.join(d, fn))
    print(f"{name}: vocab {vocab}, {sum(p.numel() for p in ref.parameters())} params, dtype {dtype}",
          flush=True)


def tiny_models(out):
    from transformers import FalconConfig, FalconForCausalLM, LlamaConfig, LlamaForCausalLM
    base = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, max_position_embeddings=256,
                rms_norm_eps=1e-5)
    make_tiny(out, "llama-gqa-tied", LlamaConfig, LlamaForCausalLM,
              dict(base, num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True,
                   rope_theta=10000.0), torch.float32, 1)
    make_tiny(out, "llama-mqa-bf16", LlamaConfig, LlamaForCausalLM,
              dict(base, num_attention_heads=4, num_key_value_heads=1, tie_word_embeddings=False,
                   rope_theta=500000.0), torch.bfloat16, 2)
    make_tiny(out, "llama-mha-f16", LlamaConfig, LlamaForCausalLM,
              dict(base, hidden_size=80, num_attention_heads=5, num_key_value_heads=5,
                   tie_word_embeddings=False), torch.float16, 3)
    make_tiny(out, "falcon-7b-style", FalconConfig, FalconForCausalLM,
              dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, multi_query=True,
                   parallel_attn=True, new_decoder_architecture=False, bias=False, alibi=False,
                   max_position_embeddings=256), torch.float32, 4)
    make_tiny(out, "falcon-180b-style", FalconConfig, FalconForCausalLM,
              dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=8, num_kv_heads=2,
                   new_decoder_architecture=True, parallel_attn=True, bias=False, alibi=False,
                   max_position_embeddings=256), torch.bfloat16, 5)
    make_tiny(out, "falcon-seq-bias", FalconConfig, FalconForCausalLM,
              dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, multi_query=False,
                   parallel_attn=False, new_decoder_architecture=False, bias=True, alibi=False,
                   max_position_embeddings=256), torch.float32, 6)


SMOL_TEXTS = [
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "Café naïve résumé façade Ångström élève",
    "你好，世界！这是一个测试。日本語のテキスト",
    "Emoji: 😀👍🏽🇺🇸 and ❤️ 🤖",
    "   leading spaces, then   runs    of spaces\n\n\nand newlines\r\n\ttabs\t\there ",
    "Numbers 12345 and 3.14159 and 1,000,000 and 2024-11-28",
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    "I'm sure they'll say it's fine, don't you think? We've seen it. WE'LL SEE",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "Россия и Україна, مرحبا بالعالم, 한국어 텍스트",
    "x" * 40 + " " + "ab" * 30,
]


def smollm2(out, path):
    from tokenizers import pre_tokenizers
    from transformers import AutoModelForCausalLM, AutoTokenizer
    d, fn = os.path.split(path)
    tok = AutoTokenizer.from_pretrained(d, gguf_file=fn)
    # transformers' GGUF converter builds a plain ByteLevel pre-tokenizer; SmolLM2's published
    # tokenizer.json (HuggingFaceTB/SmolLM2-135M-Instruct) splits digits first:
    # Sequence[Digits(individual_digits=True), ByteLevel(add_prefix_space=False, use_regex=True)].
    tok.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    rows = []
    for t in SMOL_TEXTS:
        ids = tok(t, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == t, (t, tok.decode(ids))
        rows.append({"text": t, "ids": ids})
    with open(os.path.join(out, "smollm2_tokens.json"), "w") as f:
        json.dump(rows, f, ensure_ascii=False, indent=0)
    msgs = [{"role": "user", "content": "What is the capital of France?"}]
    chat = [{"messages": msgs, "text": tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)}]
    msgs2 = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
             {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Bye"}]
    chat.append({"messages": msgs2, "text": tok.apply_chat_template(msgs2, tokenize=False, add_generation_prompt=True)})
    with open(os.path.join(out, "smollm2_chat.json"), "w") as f:
        json.dump(chat, f, ensure_ascii=False, indent=0)
    print("smollm2 tokens/chat written", flush=True)

    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=fn, torch_dtype=torch.float32,
                                                 attn_implementation="eager")
    model.eval()
    seqs = [[rows[1]["ids"][0]] + rows[1]["ids"][1:],
            tok("Once upon a time, there was", add_special_tokens=False)["input_ids"],
            [1] + tok("def main():", add_special_tokens=False)["input_ids"]]
    ref = []
    for ids in seqs:
        with torch.no_grad():
            lg = model(torch.tensor([ids])).logits[0].float()
        V = lg.shape[1]
        out_rows = []
        for r in range(lg.shape[0]):
            cols = set(range(0, V, 8)) | set(torch.topk(lg[r], 64).indices.tolist())
            out_rows.append([[c, float(lg[r, c])] for c in sorted(cols)])
        ref.append({"tokens": ids, "n_vocab": V, "argmax": lg.argmax(-1).tolist(), "rows": out_rows})
    with open(os.path.join(out, "smollm2_logits.json"), "w") as f:
        json.dump(ref, f)
    print("smollm2 logits written", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--smollm2")
    ap.add_argument("--no-tiny", action="store_true")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    import transformers
    print("torch", torch.__version__, "transformers", transformers.__version__, flush=True)
    if not a.no_tiny:
        tiny_models(a.out)
    if a.smollm2:
        smollm2(a.out, a.smollm2)


if __name__ == "__main__":
    sys.exit(main())
