"""Embedded demo data set: procedural NTU-layout 3D skeleton action clips.

Lets a newcomer train CoCoDiff end to end on a laptop without downloading
anything; see :func:`write_demo_dataset` and ``tools/data/make_demo_data.py``.
"""
from .generator import (DEMO_CLASSES, generate_clip, generate_demo_annotations,
                        write_demo_dataset, xsub_split)
from .performer import Performer, sample_performer

__all__ = [
    'DEMO_CLASSES', 'Performer', 'generate_clip', 'generate_demo_annotations',
    'sample_performer', 'write_demo_dataset', 'xsub_split'
]
