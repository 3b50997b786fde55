"""Inference on single skeleton clips (``tools/infer.py``).

Not imported by :mod:`cocodiff_mm` itself: it registers nothing.
"""
from .class_names import choose_class_names
from .clip_inputs import ClipInputError, describe_clip, load_clip
from .inference import (ClipPrediction, check_clip_fits, classify_clip,
                        config_test_pipeline, default_device,
                        inference_model_cfg, init_inference_model,
                        load_inference_weights, predict_scores, top_k)

__all__ = [
    'ClipInputError', 'ClipPrediction', 'check_clip_fits',
    'choose_class_names', 'classify_clip', 'config_test_pipeline',
    'default_device', 'describe_clip', 'inference_model_cfg',
    'init_inference_model', 'load_clip', 'load_inference_weights',
    'predict_scores', 'top_k'
]
