"""Every shipped config parses, builds its model and trains one step.

For speed the backbone is shrunk (``base_channels=16``, head
``in_channels`` to match), the diffusion chain has 5 steps instead of the
configured 30, and CoCoDiff heads use the offline pretrained MiniLM
text encoder with a session-wide bank cache: each (texts, classes) bank the
configs need is encoded once, then every model loads it from the cache.
"""
import copy
import functools
import math
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import pytest
import torch

import cocodiff_mm  # noqa: F401,I001  (runtime fixes before mmaction2)
from mmaction.models.utils import Graph
from mmaction.registry import MODELS
from mmaction.structures import ActionDataSample
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmengine.registry import init_default_scope

from cocodiff_mm.models.text import text_bank as text_bank_module
from cocodiff_mm.models.text.text_bank import TextEmbeddingBank

REPO = Path(__file__).resolve().parents[1]
CONFIGS: List[Path] = sorted((REPO / 'configs').glob('*.py'))

#: Backbones the test knows how to shrink, and their output channels as a
#: multiple of ``base_channels``.
SHRINKABLE = dict(CTRGCN=4, STGCN=4, HDGCN=4, BlockGCN=2, AAGCN=4)
SMALL_BASE = 16
SMALL_DIFFUSION_STEPS = 5

#: Loss keys a CoCoDiff head returns in its default 'joint' objective.
COCODIFF_KEYS = ('loss_cls', 'loss_gen_cls', 'loss_rec', 'loss_con',
                 'acc_generated', 'ce_generated')

init_default_scope('mmaction')




@functools.lru_cache(maxsize=None)
def load_config(path: Path) -> Config:
    """Parse a config once (callers deep-copy what they change)."""
    return Config.fromfile(str(path))


def is_cocodiff(cfg: Config) -> bool:
    return cfg.model.cls_head.type == 'DiffusionAugmentedHead'


class MemoizedEncoder:
    """One loaded encoder shared by every bank; each text encoded once.

    Stands in for the encoder a :class:`TextEmbeddingBank` builds, with the
    same identity (name, model_name, weights_id, dim), so the bank files it
    produces are exactly the ones the configs' models later look up.
    """

    def __init__(self, encoder) -> None:
        self.encoder = encoder
        self.cache: Dict[str, np.ndarray] = {}

    def __getattr__(self, name):
        return getattr(self.encoder, name)

    def encode(self, texts, batch_size: int = 64) -> np.ndarray:
        # Batches of similar length pad less: about twice as fast on a CPU.
        new = sorted((t for t in dict.fromkeys(texts) if t not in self.cache),
                     key=len)
        if new:
            for text, row in zip(new, self.encoder.encode(new, batch_size)):
                self.cache[text] = row
        return np.stack([self.cache[t] for t in texts])


@pytest.fixture(scope='session')
def minilm_bank_cache(text_bank_cache) -> Path:
    """``text_bank_cache`` holding the MiniLM bank of every CoCoDiff config
    (ntu120 with 60 and 120 classes, kinetics400, utd_mhad, demo, ...)."""
    needed = set()
    for path in CONFIGS:
        cfg = load_config(path)
        if is_cocodiff(cfg):
            head = cfg.model.cls_head
            needed.add((head.text_bank.texts, head.num_classes,
                        head.text_bank.get('classes')))
    build_encoder = text_bank_module.build_text_encoder
    shared = MemoizedEncoder(build_encoder('minilm', device='cpu'))

    def build_shared(name, **kwargs):
        return shared if name == 'minilm' else build_encoder(name, **kwargs)

    # Banks are built on first use; build each one here, once, through the
    # library's own build-and-save path, with one shared MiniLM.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(text_bank_module, 'build_text_encoder', build_shared)
        for texts, num_classes, classes in sorted(needed, key=str):
            bank = TextEmbeddingBank(texts=texts, encoder='minilm',
                                     num_classes=num_classes,
                                     classes=classes,
                                     cache_dir=str(text_bank_cache))
            bank.build()
            assert bank.num_classes == num_classes
    return text_bank_cache


def small_model_cfg(cfg: Config,
                    bank_cache: Optional[Path] = None) -> Config:
    """The config's model, shrunk, with MiniLM texts for CoCoDiff heads."""
    model = copy.deepcopy(cfg.model)
    backbone = model.backbone
    if backbone.type not in SHRINKABLE:
        pytest.fail(f'test_configs does not know how to shrink backbone '
                    f'{backbone.type!r}; add it to SHRINKABLE')
    backbone.base_channels = SMALL_BASE
    model.cls_head.in_channels = SHRINKABLE[backbone.type] * SMALL_BASE
    if is_cocodiff(cfg):
        head = model.cls_head
        head.text_bank.encoder = 'minilm'
        head.text_bank.cache_dir = str(bank_cache)
        if head.get('generation', {}).get('start_step') is None:
            # The reverse chain runs every step; a short one is enough here.
            head.diffusion.num_steps = min(head.diffusion.num_steps,
                                           SMALL_DIFFUSION_STEPS)
    return model


def input_layout(cfg: Config) -> Dict[str, int]:
    """Joints V, channels C and persons M the config's backbone expects."""
    backbone = cfg.model.backbone
    return dict(
        num_joints=Graph(**backbone.graph_cfg).num_node,
        channels=backbone.get('in_channels', 3),
        persons=backbone.get('num_person', 2))


def train_pipelines(cfg: Config) -> List[list]:
    """Pipelines of the train loader (through dataset wrappers)."""
    dataset = cfg.train_dataloader.dataset
    while 'pipeline' not in dataset and 'dataset' in dataset:
        dataset = dataset.dataset
    return [dataset.pipeline]


def test_sweep_found_configs():
    assert len(CONFIGS) >= 40, [p.name for p in CONFIGS]


#: Suffix of a CoCoDiff variant in the paper-literal setting.
PAPER_LITERAL = '_paper_literal'


def test_every_baseline_has_cocodiff_twin():
    names = {p.stem for p in CONFIGS}
    baselines = {n for n in names
                 if n.startswith('ctrgcn_') and '_cocodiff_' not in n}
    twins = {n for n in names if n.startswith('ctrgcn_cocodiff_')}
    assert baselines, 'no baseline ctrgcn_*.py config found'
    missing = sorted(f'ctrgcn_cocodiff_{n[len("ctrgcn_"):]}.py'
                     for n in baselines
                     if f'ctrgcn_cocodiff_{n[len("ctrgcn_"):]}' not in names)
    orphans = sorted(
        f'{n}.py' for n in twins if 'ctrgcn_' + n[len('ctrgcn_cocodiff_'):]
        .replace(PAPER_LITERAL, '') not in names)
    literal = [n for n in twins if n.endswith(PAPER_LITERAL)]
    assert all(n[:-len(PAPER_LITERAL)] in twins for n in literal), literal
    assert not missing, f'baselines without a CoCoDiff twin: {missing}'
    assert not orphans, f'CoCoDiff configs without a baseline: {orphans}'


@pytest.mark.parametrize('path', CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_parses_consistently(path):
    cfg = load_config(path)
    assert cfg.custom_imports['imports'] == ['cocodiff_mm']
    assert cfg.model.type == 'RecognizerGCN'
    layout = input_layout(cfg)
    for pipeline in train_pipelines(cfg):
        formats = [t for t in pipeline if t['type'] == 'FormatGCNInput']
        assert len(formats) == 1, pipeline
        # The data pipeline pads/crops to the persons the model was built for.
        assert formats[0].get('num_person', 2) == layout['persons']
    if is_cocodiff(cfg):
        assert cfg.train_cfg.type == 'TwoStageLoop'


@pytest.mark.parametrize('path', CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_trains_one_step(path, request):
    cfg = load_config(path)
    cocodiff = is_cocodiff(cfg)
    bank_cache = request.getfixturevalue('minilm_bank_cache') \
        if cocodiff else None
    torch.manual_seed(0)
    model = MODELS.build(small_model_cfg(cfg, bank_cache))
    model.init_weights()
    model.train()
    if cocodiff:
        assert model.cls_head.objective == 'joint'

    layout = input_layout(cfg)
    num_classes = cfg.model.cls_head.num_classes
    shape = (1, layout['persons'], 16, layout['num_joints'],
             layout['channels'])
    data = dict(
        inputs=[torch.randn(shape) for _ in range(2)],
        data_samples=[
            ActionDataSample().set_gt_label(label)
            for label in (0, num_classes - 1)
        ])
    optim_wrapper = OptimWrapper(
        torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9))
    fc_before = model.cls_head.fc.weight.detach().clone()

    log_vars = model.train_step(data, optim_wrapper)

    expected = COCODIFF_KEYS if cocodiff else ('loss_cls', )
    missing = [key for key in expected if key not in log_vars]
    assert not missing, (missing, sorted(log_vars))
    for key, value in log_vars.items():
        assert math.isfinite(float(value)), (key, value)
    # Only 'loss*' terms are summed; acc_generated and ce_generated are
    # logged, not optimised.
    summed = sum(float(v) for k, v in log_vars.items()
                 if k.startswith('loss_'))
    assert float(log_vars['loss']) == pytest.approx(summed, rel=1e-5)
    assert not torch.equal(model.cls_head.fc.weight, fc_before)
    if cocodiff:
        assert model.cls_head.text_bank.loaded_from_cache
        assert model.cls_head.text_bank.metadata['encoder'] == 'minilm'
        assert model.cls_head.text_bank.num_classes == num_classes
