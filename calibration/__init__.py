"""int8 post-training quantization, float-vs-int8 accuracy checks, latency profiling."""
