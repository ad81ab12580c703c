from l2v.bench.roofline import best_peaks, peak_fraction_rows


def test_percent_of_the_best_probe_of_the_same_library_and_dtype():
    rows = [{"metric": "matmul_peak", "value": 80.0, "library": "torch", "dtype": "fp32"},
            {"metric": "matmul_peak", "value": 100.0, "library": "torch", "dtype": "fp32"},
            {"metric": "matmul_peak", "value": 400.0, "library": "torch", "dtype": "int8"},
            {"metric": "achieved_flops", "value": 50.0, "library": "torch", "dtype": "fp32", "batch": 1},
            {"metric": "achieved_flops", "value": 50.0, "library": "onnxruntime", "dtype": "fp16", "batch": 1}]
    assert best_peaks(rows)[("torch", "fp32")] == 100.0
    (out,) = peak_fraction_rows(rows)  # nothing for an unprobed library/dtype
    assert out["metric"] == "peak_fraction" and out["value"] == 50.0 and out["batch"] == 1
