"""Deployment: the inference model (backbone + stock GCN head) as ONNX.

``onnx`` and ``onnxruntime`` (``requirements/onnx.txt``) are imported only
by the functions that need them.
"""
from .onnx_export import (INPUT_NAME, OUTPUT_NAME, InferenceGCN,
                          InputLayout, OnnxExportReport, build_inference_model,
                          check_onnx_against_torch,
                          export_checkpoint_to_onnx, export_onnx,
                          inference_head_cfg, input_layout,
                          load_inference_weights)

__all__ = [
    'INPUT_NAME', 'OUTPUT_NAME', 'InferenceGCN', 'InputLayout',
    'OnnxExportReport', 'build_inference_model', 'check_onnx_against_torch',
    'export_checkpoint_to_onnx', 'export_onnx', 'inference_head_cfg',
    'input_layout', 'load_inference_weights'
]
