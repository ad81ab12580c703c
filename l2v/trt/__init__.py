"""TensorRT, the parts every layer shares: the build plan of a `trt-*` variant (`plan.py`), the engine
builder and runner (`engine.py`, TensorRT and a CUDA GPU only) and the ONNX Runtime stand-in for a bf16
graph (`simulate.py`). A leaf: imports only errors/fileio; tensorrt, torch and onnx are imported inside
the functions that need them, so `import l2v` stays lean.

Who uses it: the `trt-*` quantization handlers write graphs and plans (l2v/quantize/trt_methods.py),
the `trt` backend runs them (l2v/runtime/trt.py), export and `l2v-build-trt` build the engines
(l2v/export/trt.py)."""
