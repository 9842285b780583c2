"""Deployment targets of a trained model: each a folder of the exported artifact, built from the FP32 Paddle
Inference export, checked against the dygraph logits, and measured (`ppipe.export.targets`)."""

from ppipe.export.paddle_inference import ExportError, export_inference_model, max_relative_error, reparameterize

__all__ = ["ExportError", "export_inference_model", "max_relative_error", "reparameterize"]
