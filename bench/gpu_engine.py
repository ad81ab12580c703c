"""GPU engine benchmark: one call measures every figure in docs/gpu.md and writes JSON + Markdown.

  python bench/gpu_engine.py --out out/gpu_engine            # on a CUDA machine (sm80+; fp8 sm89+)
  python bench/gpu_engine.py --out out/gpu_dry --dry-run     # CPU smoke run of every code path

Measures (random weights, random token ids; no download):
 1. bf16 matmul peak (8192^3) in this run: the MFU denominator.
 2. attention: our Triton varlen kernel vs F.scaled_dot_product_attention on the padded batch with a
    key-padding mask, and vs SDPA without mask on the same packed total cut into dense [*, L] rows,
    at L = 128 / 512 / 2048 (lengths uniform in [L/2, L]), in TFLOP/s of useful work (4*H*D*sum L^2).
 3. end to end, tokens/s on a log-uniform 16..512 length mix: HF transformers bf16 SDPA on padded,
    length-sorted batches made bidirectional by a 4-D mask (baseline); our packed engine in bf16,
    fp8, int8; for a Llama-3-8B-shaped and a SmolLM2-135M-shaped model; MFU vs (1).
 4. (3) again under a 24 GB cap (torch.cuda.set_per_process_memory_fraction).
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHAPES = {  # LlamaConfig kwargs
    "llama3-8b": dict(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                      intermediate_size=14336, vocab_size=128256),
    "smollm2-135m": dict(hidden_size=576, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
                         intermediate_size=1536, vocab_size=49152, tie_word_embeddings=True),
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                 intermediate_size=128, vocab_size=1000, head_dim=16),
}
TARGETS = {"kernel_vs_masked_sdpa_at_512": 1.2, "packed_vs_hf": 1.5, "quant_vs_bf16": 1.6, "bf16_mfu": 0.60}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="output directory for gpu_engine.json / gpu_engine.md")
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--tiny", action="store_true", help="tiny shapes (CPU smoke run)")
    p.add_argument("--dry-run", action="store_true", help="= --device cpu --tiny")
    p.add_argument("--models", default="llama3-8b,smollm2-135m")
    p.add_argument("--layers", type=int, default=None, help="shrink the llama3-8b shape to N layers")
    p.add_argument("--n-texts", type=int, default=1024)
    p.add_argument("--max-batch-tokens", type=int, default=16384)
    p.add_argument("--hf-batch-size", type=int, default=32)
    p.add_argument("--mem-cap-gb", type=float, default=24.0, help="0 disables the capped run")
    p.add_argument("--skip-kernel", action="store_true")
    p.add_argument("--skip-e2e", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    if a.dry_run:
        a.device, a.tiny = "cpu", True
    return a


def sync(dev):
    import torch
    if dev == "cuda":
        torch.cuda.synchronize()


def bench(fn, dev, reps, with_result=False):
    """Median seconds of `reps` calls after one warm-up call (and the last result if asked)."""
    fn()
    times = []
    for _ in range(reps):
        sync(dev)
        t = time.perf_counter()
        res = fn()
        sync(dev)
        times.append(time.perf_counter() - t)
    med = sorted(times)[len(times) // 2]
    return (med, res) if with_result else med


def matmul_peak(dev, tiny):
    import torch
    n, dt = (256, torch.float32) if tiny else (8192, torch.bfloat16)
    a, b = torch.randn(n, n, device=dev, dtype=dt), torch.randn(n, n, device=dev, dtype=dt)
    return 2 * n ** 3 / bench(lambda: a @ b, dev, 3 if tiny else 20) / 1e12


def kernel_bench(a, dt, log):
    import torch
    import torch.nn.functional as F
    try:
        from l2v.kernels.flash_attn import varlen_attention
    except ImportError as exc:
        return {"skipped": f"triton kernel unavailable: {exc}"}
    h, kv, d, total = (4, 2, 64, 256) if a.tiny else (32, 8, 128, 16384)
    reps = 1 if a.tiny else 20
    g = torch.Generator().manual_seed(a.seed)
    rows = []
    for L in ((32, 64) if a.tiny else (128, 512, 2048)):
        lens = []
        while sum(lens) < total:
            lens.append(int(torch.randint(L // 2, L + 1, (1,), generator=g)))
        t, b = sum(lens), len(lens)
        q = torch.randn(t, h, d, device=a.device, dtype=dt)
        k, v = (torch.randn(t, kv, d, device=a.device, dtype=dt) for _ in range(2))
        cu = torch.tensor([0] + torch.tensor(lens).cumsum(0).tolist(), dtype=torch.int32, device=a.device)
        useful = 4 * h * d * sum(n * n for n in lens)
        qp, kp, vp = (torch.zeros(b, L, x.shape[1], d, device=a.device, dtype=dt) for x in (q, k, v))
        keep = torch.zeros(b, L, dtype=torch.bool, device=a.device)
        for i, (s, n) in enumerate(zip(cu[:-1].tolist(), lens)):
            qp[i, :n], kp[i, :n], vp[i, :n], keep[i, :n] = q[s:s + n], k[s:s + n], v[s:s + n], True
        qp, kp, vp = qp.transpose(1, 2), kp.transpose(1, 2).repeat_interleave(h // kv, 1), \
            vp.transpose(1, 2).repeat_interleave(h // kv, 1)
        mask = keep[:, None, None, :]
        nb = math.ceil(t / L)
        qd, kd, vd = (torch.randn(nb, h, L, d, device=a.device, dtype=dt) for _ in range(3))
        t_ours = bench(lambda: varlen_attention(q, k, v, cu, L), a.device, reps)
        t_mask = bench(lambda: F.scaled_dot_product_attention(qp, kp, vp, attn_mask=mask), a.device, reps)
        t_dense = bench(lambda: F.scaled_dot_product_attention(qd, kd, vd), a.device, reps)
        row = dict(L=L, batch=b, total_tokens=t, heads=h, kv_heads=kv, head_dim=d,
                   ours_tflops=useful / t_ours / 1e12, sdpa_masked_tflops=useful / t_mask / 1e12,
                   sdpa_nomask_tflops=4 * h * d * nb * L * L / t_dense / 1e12, speedup_vs_masked=t_mask / t_ours)
        log(f"attention L={L}: ours {row['ours_tflops']:.2f} | SDPA masked {row['sdpa_masked_tflops']:.2f} | "
            f"SDPA no mask {row['sdpa_nomask_tflops']:.2f} TFLOP/s | x{row['speedup_vs_masked']:.2f} vs masked")
        rows.append(row)
    return {"rows": rows}


def build_model(name, a, dt):
    import torch
    import transformers as tf
    kw = dict(SHAPES["tiny" if a.tiny else name])
    if name == "llama3-8b" and a.layers and not a.tiny:
        kw["num_hidden_layers"] = a.layers
    cfg = tf.LlamaConfig(**kw, max_position_embeddings=8192, attn_implementation="eager" if a.tiny else "sdpa")
    torch.manual_seed(a.seed)
    with torch.device(a.device):
        model = tf.AutoModel.from_config(cfg, dtype=dt)
    return model.eval()


def linear_flops(model, tokens, lens):
    cfg = model.config
    import torch
    n_lin = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    hd = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    attn = 4 * cfg.num_hidden_layers * cfg.num_attention_heads * hd * sum(n * n for n in lens)
    return 2 * n_lin * tokens + attn


def hf_padded(model, seqs, bs, dev):
    """Baseline: HF forward on length-sorted padded batches, bidirectional via a 4-D additive mask."""
    import torch
    dt = next(model.parameters()).dtype
    order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i]))
    out = torch.empty(len(seqs), model.config.hidden_size, device=dev)
    for j in range(0, len(order), bs):
        idx = order[j:j + bs]
        s = max(len(seqs[i]) for i in idx)
        ids = torch.zeros(len(idx), s, dtype=torch.long, device=dev)
        am = torch.zeros_like(ids)
        for r, i in enumerate(idx):
            ids[r, :len(seqs[i])], am[r, :len(seqs[i])] = seqs[i].to(dev), 1
        mask = torch.where(am[:, None, None, :].bool().expand(-1, 1, s, -1), 0.0, torch.finfo(dt).min).to(dt)
        h = model(input_ids=ids, attention_mask=mask, position_ids=(am.cumsum(-1) - 1).clamp(min=0)).last_hidden_state
        m = am[..., None].to(h.dtype)
        out[idx] = ((h * m).sum(1) / m.sum(1)).float()
    return out


def e2e(name, a, dt, log, tag):
    import torch
    g = torch.Generator().manual_seed(a.seed)
    lo, hi, n = (4, 32, 24) if a.tiny else (16, 512, a.n_texts)
    lens = torch.exp(torch.empty(n).uniform_(math.log(lo), math.log(hi), generator=g)).round().long().tolist()
    vocab = SHAPES["tiny" if a.tiny else name]["vocab_size"]
    seqs = [torch.randint(1, vocab, (m,), generator=g) for m in lens]
    tokens = sum(lens)
    attn_impl = "torch" if a.device == "cpu" else "triton"
    results, ref = {}, {}
    for variant in ("hf_sdpa_padded", "packed_bf16", "packed_fp8", "packed_int8"):
        run = None
        try:
            if a.device == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            run, flops = make_runner(variant, name, a, dt, seqs, tokens, lens, attn_impl)
            with torch.inference_mode():
                secs, ref[variant] = bench(run, a.device, 1, with_result=True)
            peak = torch.cuda.max_memory_allocated() / 2 ** 30 if a.device == "cuda" else None
            results[variant] = dict(tokens_per_s=tokens / secs, seconds=secs, peak_mem_gib=peak, flops=flops)
            log(f"[{tag}] {name} {variant}: {tokens / secs:.0f} tok/s, {secs:.2f} s")
        except Exception as exc:  # noqa: BLE001 - OOM / unsupported GPU are results, not crashes
            results[variant] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
            log(f"[{tag}] {name} {variant}: {results[variant]['error']}")
        finally:
            run = None  # drops the model before the next variant builds its own (memory cap)
            gc.collect()
            if a.device == "cuda":
                torch.cuda.empty_cache()
    return finish(results, ref, tokens, lens, a)


def make_runner(variant, name, a, dt, seqs, tokens, lens, attn_impl):
    """A fresh model per variant (quantized ones free their bf16 weights). Returns (run, flops)."""
    from l2v.engine.packed import PackedEncoder
    from l2v.engine.quantize import quantize_linears
    model = build_model(name, a, dt)
    flops = linear_flops(model, tokens, lens)  # before free_source empties the HF weights
    if variant == "hf_sdpa_padded":
        return (lambda: hf_padded(model, seqs, a.hf_batch_size, a.device)), flops
    enc = PackedEncoder(model, pooling="mean", attn_impl=attn_impl)
    if variant != "packed_bf16":
        quantize_linears(enc, variant.split("_")[1], free_source=True)
    return (lambda: enc.encode(seqs, max_batch_tokens=a.max_batch_tokens)), flops


def finish(results, ref, tokens, lens, a):
    import torch.nn.functional as F
    base = ref.get("packed_bf16")
    for v, emb in ref.items():
        if base is not None and v != "packed_bf16":
            results[v]["cosine_vs_packed_bf16"] = F.cosine_similarity(emb, base, dim=-1).mean().item()
    return dict(n_texts=len(lens), tokens=tokens, max_batch_tokens=a.max_batch_tokens, variants=results)


def _version(pkg):
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(pkg)
    except PackageNotFoundError:
        return None


def target_checks(report):
    """[(what, measured, target, met)] for the docs/gpu.md targets that this run measured."""
    checks = []
    for r in report.get("kernel", {}).get("rows", []):
        if r["L"] == 512:
            checks.append(("kernel / masked SDPA at L=512", r["speedup_vs_masked"], TARGETS["kernel_vs_masked_sdpa_at_512"]))
    for key, block in report.get("e2e", {}).items():
        v = block["variants"]
        tps = {k: x.get("tokens_per_s") for k, x in v.items()}
        if tps.get("packed_bf16") and tps.get("hf_sdpa_padded"):
            checks.append((f"{key}: packed bf16 / HF padded", tps["packed_bf16"] / tps["hf_sdpa_padded"],
                           TARGETS["packed_vs_hf"]))
        for q in ("packed_fp8", "packed_int8"):
            if tps.get(q) and tps.get("packed_bf16"):
                checks.append((f"{key}: {q} / packed bf16", tps[q] / tps["packed_bf16"], TARGETS["quant_vs_bf16"]))
        if tps.get("packed_bf16"):
            r = v["packed_bf16"]
            checks.append((f"{key}: packed bf16 MFU (batches <= {block['max_batch_tokens']} tokens)",
                           r["flops"] / r["seconds"] / 1e12 / report["peak_tflops"], TARGETS["bf16_mfu"]))
    return [dict(what=w, measured=m, target=t, met=m >= t) for w, m, t in checks]


def md_table(report):
    out = ["| section | item | value |", "|---|---|---|", f"| peak | bf16 matmul TFLOP/s | {report['peak_tflops']:.1f} |"]
    for r in report.get("kernel", {}).get("rows", []):
        out.append(f"| attention L={r['L']} | ours / SDPA masked / SDPA no-mask TFLOP/s | {r['ours_tflops']:.2f} / "
                   f"{r['sdpa_masked_tflops']:.2f} / {r['sdpa_nomask_tflops']:.2f} (x{r['speedup_vs_masked']:.2f}) |")
    for key, block in report.get("e2e", {}).items():
        for v, r in block["variants"].items():
            if "error" in r:
                out.append(f"| {key} | {v} | {r['error']} |")
                continue
            mfu = r["flops"] / r["seconds"] / 1e12 / report["peak_tflops"]
            extra = f", cos {r['cosine_vs_packed_bf16']:.4f}" if "cosine_vs_packed_bf16" in r else ""
            mem = f", {r['peak_mem_gib']:.1f} GiB" if r.get("peak_mem_gib") else ""
            out.append(f"| {key} | {v} | {r['tokens_per_s']:.0f} tok/s, MFU {mfu:.1%}{mem}{extra} |")
    out += ["", "| target | measured | goal | met |", "|---|---|---|---|"]
    out += [f"| {c['what']} | {c['measured']:.2f} | {c['target']:.2f} | {'yes' if c['met'] else 'NO'} |"
            for c in report["target_checks"]]
    return "\n".join(out) + "\n"


def main(argv=None):
    a = parse_args(argv)
    import torch
    if a.device == "cuda" and not torch.cuda.is_available():
        print("error: bench/gpu_engine.py needs a CUDA GPU and torch.cuda.is_available() is False "
              "(for a CPU smoke run of the code paths use --dry-run)", file=sys.stderr)
        return 2
    if a.device == "cpu":
        os.environ.setdefault("TRITON_INTERPRET", "1")  # before the kernel module is imported
    dt = torch.float32 if a.device == "cpu" else torch.bfloat16
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    log = print
    report = dict(device=torch.cuda.get_device_name() if a.device == "cuda" else platform.processor() or "cpu",
                  torch=torch.__version__, triton=_version("triton"), transformers=_version("transformers"),
                  args=vars(a), targets=TARGETS, dtype=str(dt),
                  created=time.strftime("%Y-%m-%dT%H:%M:%S"))
    report["peak_tflops"] = matmul_peak(a.device, a.tiny)
    log(f"peak matmul: {report['peak_tflops']:.2f} TFLOP/s ({report['device']})")
    if not a.skip_kernel:
        report["kernel"] = kernel_bench(a, dt, log)
    if not a.skip_e2e:
        report["e2e"] = {}
        for name in a.models.split(","):
            report["e2e"][f"{name}[tiny]" if a.tiny else name] = e2e(name, a, dt, log, "uncapped")
        if a.device == "cuda" and a.mem_cap_gb > 0:
            total = torch.cuda.get_device_properties(0).total_memory
            torch.cuda.set_per_process_memory_fraction(min(1.0, a.mem_cap_gb * 2 ** 30 / total))
            for name in a.models.split(","):
                report["e2e"][f"{name}@{a.mem_cap_gb:g}GB"] = e2e(name, a, dt, log, f"cap {a.mem_cap_gb:g} GB")
            torch.cuda.set_per_process_memory_fraction(1.0)
    report["target_checks"] = target_checks(report)
    table = md_table(report)
    if a.device == "cpu":
        table = "CPU dry run with tiny shapes: checks the code paths only; no figure here means anything.\n\n" + table
    (out / "gpu_engine.json").write_text(json.dumps(report, indent=2))
    (out / "gpu_engine.md").write_text(f"# GPU engine benchmark ({report['device']})\n\n{table}")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
