"""Floor 2, models at work on photos and video: EmotionRecognizer, which classifier runs (PyTorch or an ONNX
export), the exporter and its cache, tracking and smoothing, the video loop, drawing. Built on models, faces
and core."""
