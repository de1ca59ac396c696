"""nncf int8 for TensorRT and onnxruntime: quantize, the exported QDQ arithmetic, ONNX rewrites."""
