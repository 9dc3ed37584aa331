"""Runs ../shared/bench/torch_lora_reference.py with two things of config.json it does not read:
an explicit head_dim (it derives hidden_size // num_attention_heads) and rope_scaling (linear,
llama3). The reference stays the one computing the step; only those two pieces are swapped in:

  * head_dim: the reference's own `hd = d // nh` lines become `cfg.get("head_dim") or d // nh`.
    If the reference no longer has exactly the lines this expects, this fails loudly instead of
    silently comparing against an unpatched model.
  * rope_scaling: its `rope` function is replaced by one that takes the inverse frequencies from
    inverse_frequencies() below, written from Hugging Face's modeling_rope_utils
    (_compute_linear_scaling_rope_parameters, _compute_llama3_parameters), in torch.

usage: torch_reference_ext.py REFERENCE_SCRIPT grads --model DIR ...   (the reference's arguments)
       torch_reference_ext.py --inv-freq CONFIG_JSON                  (prints the inverse frequencies)
"""
import json, math, sys

import torch


def inverse_frequencies(cfg, dtype=torch.float64):
    hd = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    inv = 1.0 / (cfg.get("rope_theta", 10000.0) ** (torch.arange(0, hd, 2, dtype=dtype) / hd))
    scaling = cfg.get("rope_scaling") or {}
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    if kind == "default":
        return inv
    if kind == "linear":
        return inv / scaling["factor"]
    if kind != "llama3":
        raise SystemExit(f"torch_reference_ext: rope_scaling {kind} not implemented here")
    factor = scaling["factor"]
    low, high = scaling["low_freq_factor"], scaling["high_freq_factor"]
    old_len = scaling["original_max_position_embeddings"]
    wavelen = 2 * math.pi / inv
    scaled = torch.where(wavelen > old_len / low, inv / factor, inv)
    smooth = (old_len / wavelen - low) / (high - low)
    blended = (1 - smooth) * scaled / factor + smooth * scaled
    medium = (wavelen >= old_len / high) & (wavelen <= old_len / low)
    return torch.where(medium, blended, scaled)


def main():
    if sys.argv[1] == "--inv-freq":
        cfg = json.load(open(sys.argv[2]))
        print(json.dumps(inverse_frequencies(cfg).tolist()))
        return
    script, args = sys.argv[1], sys.argv[2:]
    source = open(script).read()
    old = "hd = d // nh"
    if source.count(old) != 2:
        raise SystemExit(f"torch_reference_ext: expected 2 lines '{old}' in {script}; update this helper")
    source = source.replace(old, 'hd = cfg.get("head_dim") or d // nh')
    body, sep, entry = source.partition('if __name__ == "__main__":')
    if not sep:
        raise SystemExit(f"torch_reference_ext: {script} has no __main__ block; update this helper")
    cfg = json.load(open(args[args.index("--model") + 1] + "/config.json"))
    ns = {"__name__": "torch_lora_reference", "__file__": script}
    exec(compile(body, script, "exec"), ns)

    def rope(x, theta):
        # x: [b, h, t, hd]; the same rotate-half application as the reference's, scaled frequencies
        t, hd = x.shape[2], x.shape[3]
        inv = inverse_frequencies({**cfg, "head_dim": hd, "rope_theta": theta}, torch.float64)
        freqs = torch.outer(torch.arange(t, dtype=torch.float64), inv)
        emb = torch.cat([freqs, freqs], dim=-1)
        cos, sin = emb.cos().to(x.dtype), emb.sin().to(x.dtype)
        rot = torch.cat([-x[..., hd // 2:], x[..., : hd // 2]], dim=-1)
        return x * cos + rot * sin

    ns["rope"] = rope
    sys.argv = [script] + args
    ns["__name__"] = "__main__"
    exec(compile("if True:" + entry, script, "exec"), ns)


main()
