"""Per-layer RSS in calibration and ranking on a LayerwiseModel (no export)."""
import ctypes, gc, os, sys, time
from pathlib import Path
import numpy as np
from transformers import AutoConfig
from l2v.model.checkpoint import SafetensorsWeights
from l2v.model.merge import MergedWeights
from l2v.model.layerwise import LayerwiseModel
from l2v.quantize.calibrate import collect_stats_layerwise
from l2v.quantize.sensitivity import rank_layers_layerwise

libc = ctypes.CDLL("libc.so.6")
TRIM = os.environ.get("TRIM") == "1"
def st(k):
    for line in open("/proc/self/status"):
        if line.startswith(k + ":"):
            return int(line.split()[1]) / 1024
def reset():
    Path("/proc/self/clear_refs").write_text("5")
def mi():
    # mallinfo2
    class MI(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in ("arena","ordblks","smblks","hblks","hblkhd","usmblks","fsmblks","uordblks","fordblks","keepcost")]
    libc.mallinfo2.restype = MI
    m = libc.mallinfo2()
    return f"arena={m.arena/2**20:.0f}M mmap={m.hblkhd/2**20:.0f}M used={m.uordblks/2**20:.0f}M free={m.fordblks/2**20:.0f}M"

model = Path(sys.argv[1])
config = AutoConfig.from_pretrained(str(model), local_files_only=True)
ads = [str(model.with_name(model.name + s)) for s in ("-mntp", "-supervised")]
lw = LayerwiseModel(config, MergedWeights(SafetensorsWeights(model, config), ads), "mean", False, False)
rng = np.random.default_rng(0)
def mk(n, T, bs):
    out = []
    for s in range(0, n, bs):
        k = min(bs, n - s)
        lens = rng.integers(T // 2, T + 1, size=k); L = int(lens.max())
        am = (np.arange(L)[None] < lens[:, None]).astype(np.int64)
        out.append({"input_ids": rng.integers(0, config.vocab_size, size=(k, L)).astype(np.int64) * am,
                    "attention_mask": am, "pooling_mask": am.copy()})
    return out

orig_release = lw.release
def release(i):
    orig_release(i)
    gc.collect()
    if TRIM:
        libc.malloc_trim(0)
    print(f"  layer {i}: RSS {st('VmRSS'):.0f} MiB HWM {st('VmHWM'):.0f} MiB {mi()}", flush=True)
lw.release = release

print("start", st("VmRSS"), mi(), flush=True)
reset()
t = time.time()
stats = collect_stats_layerwise(lw, mk(16, 128, 16))
gc.collect()
print(f"calib done: RSS {st('VmRSS'):.0f} HWM {st('VmHWM'):.0f} {time.time()-t:.0f}s", mi(), flush=True)
if TRIM: libc.malloc_trim(0)
reset()
t = time.time()
r = rank_layers_layerwise(lw, mk(8, 32, 8))
print(f"rank done: RSS {st('VmRSS'):.0f} HWM {st('VmHWM'):.0f} {time.time()-t:.0f}s", mi(), flush=True)
