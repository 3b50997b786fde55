"""CoCoDiff on mmaction2's other stock GCNs: ST-GCN++ and 2s-AGCN (AAGCN).

Their configs inherit mmaction2's own model-zoo configs (``mmaction::``). A
real Runner (``tools/train.py``) trains each through stages 0, 1 and 2 on
generated clips of ten NTU-60 classes in the NTU pickle format, one epoch
a stage, with the backbone shrunk to 8 base channels, 16 frames, the random
text encoder on one short text per class and a 5-step chain. The full-width
backbones feed the head the channels its ``in_channels`` says, and the head
takes NTU-60's 60 class texts. ``tools/gpu_check.sh`` starts without CUDA and
skips every CUDA part; the CUDA-only test here is one of the parts it runs.
"""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import cocodiff_mm  # noqa: F401,I001  (runtime fixes before mmaction2)
from mmengine.config import Config

from conftest import (ONE_EPOCH_PER_STAGE, REPO, make_skeleton_annotations,
                      read_log, run_ok, write_pickle)

CONFIGS = {
    'stgcnpp': 'configs/stgcnpp_cocodiff_ntu60_xsub.py',
    'aagcn': 'configs/aagcn_cocodiff_ntu60_xsub.py',
}
#: Base channels of the shrunk backbones, and their output channels.
SMALL_BASE, SMALL_OUT = 8, 32
STAGE2_KEYS = {'loss', 'loss_cls', 'loss_gen_cls', 'loss_rec', 'loss_con',
               'acc_generated', 'ce_generated'}


def stock_tiny_options(ann_file: Path, texts: Path, bank_dir: Path) -> list:
    """``--cfg-options`` that shrink an ``mmaction::`` NTU config (its train
    set is a x5 ``RepeatDataset``) to seconds on a CPU."""
    datasets = dict(train_dataloader='train_dataloader.dataset.dataset',
                    val_dataloader='val_dataloader.dataset',
                    test_dataloader='test_dataloader.dataset')
    options = ['train_dataloader.dataset.times=1']
    for loader, dataset in datasets.items():
        options += [f'{dataset}.ann_file={ann_file}',
                    f'{dataset}.pipeline.2.clip_len=16',
                    f'{loader}.num_workers=0',
                    f'{loader}.persistent_workers=False',
                    f'{loader}.batch_size=8']
    return options + [
        'test_dataloader.dataset.pipeline.2.num_clips=1',
        f'model.backbone.base_channels={SMALL_BASE}',
        f'model.cls_head.in_channels={SMALL_OUT}',
        f'model.cls_head.text_bank.texts={texts}',
        'model.cls_head.text_bank.encoder=random',
        f'model.cls_head.text_bank.cache_dir={bank_dir}',
        'model.cls_head.denoiser.widths=(32,)',
        # A 5-step chain, noised to and denoised from step 2 (the config's
        # step 10 of 30, rescaled).
        'model.cls_head.diffusion.num_steps=5',
        'model.cls_head.generation.start_step=2',
        'default_hooks.logger.interval=2',
    ]


def scalars(work_dir: Path) -> list:
    """Every record of mmengine's ``vis_data/scalars.json``."""
    records = []
    for path in sorted(work_dir.glob('*/vis_data/scalars.json')):
        records += [json.loads(line)
                    for line in path.read_text().splitlines() if line]
    return records


@pytest.fixture(scope='module')
def ten_class_pickle(tmp_path_factory) -> Path:
    """20 train and 20 val clips of the first ten NTU-60 classes."""
    path = tmp_path_factory.mktemp('data') / 'ntu60_3d.pkl'
    return write_pickle(path, make_skeleton_annotations(10, per_class=4))


@pytest.fixture(scope='module')
def short_texts(tmp_path_factory) -> Path:
    """A class-text file of 60 classes, one coarse and one fine text each
    (the random encoder encodes NTU-120's 541 texts slowly on a CPU)."""
    classes = [dict(label=f'action {i}', coarse=[f'action number {i}'],
                    fine=[f'a person performs movement number {i}'])
               for i in range(60)]
    path = tmp_path_factory.mktemp('texts') / 'short60.json'
    path.write_text(json.dumps(dict(name='short60', source='generated',
                                    classes=classes)))
    return path


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_stock_gcn_trains_all_three_stages(name, ten_class_pickle,
                                           short_texts, text_bank_cache,
                                           tmp_path):
    # One thread: the tests share a small CPU with other processes.
    run_ok('tools/train.py', CONFIGS[name], '--work-dir', str(tmp_path),
           '--seed', '0', '--cfg-options',
           *stock_tiny_options(ten_class_pickle, short_texts,
                               text_bank_cache),
           *ONE_EPOCH_PER_STAGE)
    for stage in (0, 1):
        assert (tmp_path / f'stage{stage}_final.pth').is_file(), stage
    assert (tmp_path / 'epoch_3.pth').is_file()
    times = json.loads((tmp_path / 'stage_times.json').read_text())
    assert set(times) == {'stage0', 'stage1', 'stage2'}
    log = read_log(tmp_path)
    assert 'Stage 2 (fresh GCN + fine-tuned diffusion): epoch 1/1' in log
    train = [r for r in scalars(tmp_path) if 'loss' in r]
    by_epoch = {}
    for record in train:
        by_epoch.setdefault(record['epoch'], set()).update(record)
    assert {'loss_cls'} <= by_epoch[1] and 'loss_rec' not in by_epoch[1]
    assert {'loss_rec', 'loss_con'} <= by_epoch[2]
    assert STAGE2_KEYS <= by_epoch[3], sorted(by_epoch[3])
    for record in train:
        assert all(math.isfinite(v) for k, v in record.items()
                   if k.startswith('loss')), record
    # Stage 2 validated on the val split.
    assert any('acc/top1' in r for r in scalars(tmp_path))


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_head_fits_the_full_backbone_and_the_60_classes(name, tmp_path):
    from mmaction.registry import MODELS
    from mmengine.registry import init_default_scope

    from cocodiff_mm.models.text.text_bank import TextEmbeddingBank

    init_default_scope('mmaction')
    cfg = Config.fromfile(str(REPO / CONFIGS[name]))
    head = cfg.model.cls_head
    assert head.type == 'DiffusionAugmentedHead'
    assert head.num_classes == 60
    bank = head.text_bank
    texts = TextEmbeddingBank(
        texts=bank.texts, num_classes=head.num_classes,
        classes=bank.get('classes'), encoder='random',
        cache_dir=str(tmp_path)).load_texts()
    assert texts.num_classes == 60
    # NTU-60's first and last classes (A001, A060).
    assert texts.labels[0] == 'drink water'
    assert texts.labels[-1] == 'walking apart from each other'
    assert head.in_channels == 256
    skeletons = torch.randn(1, 2, 8, 25, 3)  # (N, M, T, V, C)
    for base, out in ((64, head.in_channels), (SMALL_BASE, SMALL_OUT)):
        backbone = MODELS.build(
            dict(cfg.model.backbone, base_channels=base)).eval()
        with torch.no_grad():
            features = backbone(skeletons)  # (N, M, C, T', V)
        assert features.shape[2] == out, (base, features.shape)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_stage2_step_on_cuda_with_amp(name, text_bank_cache):
    """One full-width stage-2 step on the GPU under AmpOptimWrapper."""
    import mmaction.engine  # noqa: F401  (AAGCN's ConvBranch init)
    from mmaction.registry import MODELS
    from mmaction.structures import ActionDataSample
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope

    init_default_scope('mmaction')
    cfg = Config.fromfile(str(REPO / CONFIGS[name]))
    cfg.model.cls_head.text_bank.encoder = 'random'
    cfg.model.cls_head.text_bank.cache_dir = str(text_bank_cache)
    model = MODELS.build(cfg.model).cuda()
    model.init_weights()
    model.train()
    model.cls_head.text_bank.build()
    model.cls_head.text_bank.cuda()
    wrapper = build_optim_wrapper(
        model, dict(cfg.optim_wrapper, type='AmpOptimWrapper'))
    data = dict(inputs=[torch.randn(1, 2, 32, 25, 3) for _ in range(4)],
                data_samples=[ActionDataSample().set_gt_label(label)
                              for label in (0, 1, 58, 59)])
    log_vars = model.train_step(data, optim_wrapper=wrapper)
    assert STAGE2_KEYS - {'loss'} <= set(log_vars), sorted(log_vars)
    assert all(math.isfinite(float(v)) for v in log_vars.values())


def test_gpu_check_skips_every_cuda_part_without_cuda(tmp_path):
    if torch.cuda.is_available():
        pytest.skip('CUDA present: the skips are for a machine without it')
    env = dict(os.environ, CUDA_VISIBLE_DEVICES='', PYTHON=sys.executable)
    result = subprocess.run(
        ['bash', 'tools/gpu_check.sh', str(tmp_path / 'out')], cwd=REPO,
        env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    skipped = [line for line in result.stdout.splitlines()
               if 'skipped: no CUDA device' in line]
    assert len(skipped) == 3, result.stdout  # tests, benchmark, AMP run
    summary = (tmp_path / 'out' / 'gpu_check.txt').read_text()
    assert f'torch {torch.__version__}' in summary, summary
    assert summary.count('skipped: no CUDA device') == 3, summary
    # Nothing ran: no benchmark figures, no scratch (data, work dir).
    assert not list((tmp_path / 'out').glob('*.json'))
    assert not (tmp_path / 'out' / 'work').exists()
