"""tools/infer.py: one clip through the config's test pipeline, top-5 out.

A tiny CTR-GCN and a tiny CoCoDiff model are trained for one epoch (per
stage) on generated NTU data; their predictions on single clips must be the
ones ``tools/test.py --dump`` writes for the same samples, and a CoCoDiff
checkpoint must infer without any diffusion part being built.
"""
import importlib.util
import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config

from conftest import REPO, run_ok, run_tool, shared_data_dir, tiny_options

from cocodiff_mm.apis import (ClipInputError, choose_class_names,
                              classify_clip, inference_model_cfg,
                              init_inference_model, load_clip)
from cocodiff_mm.engine.checkpoint_match import CheckpointMismatchError


BASELINE = 'configs/ctrgcn_ntu60_xsub.py'
COCODIFF = 'configs/ctrgcn_cocodiff_ntu60_xsub.py'
KINETICS = 'configs/ctrgcn_kinetics.py'
#: ``  1. drink water [0]: 0.9120``
ROW = re.compile(r'^\s*(\d+)\. (.+) \[(\d+)\]: ([0-9.]+)$', re.M)


def load_tool(name: str):
    """``tools/<name>.py`` as a module (its ``main`` runs in-process)."""
    spec = importlib.util.spec_from_file_location(
        f'tool_{name}', REPO / 'tools' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_cfg(config: str, ann_file: Path) -> Config:
    """``config`` with :func:`tiny_options` merged (the same pipelines as
    the training and ``tools/test.py`` runs)."""
    import argparse

    from mmengine.config import DictAction
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    options = parser.parse_args(['--cfg-options', *tiny_options(ann_file)])
    cfg = Config.fromfile(str(REPO / config))
    cfg.merge_from_dict(options.cfg_options)
    return cfg


def read_dump(path: Path, ann_file: Path, split: str = 'xsub_val') -> dict:
    """``frame_dir`` to ``pred_score`` of a ``tools/test.py --dump`` file.

    One process without shuffling dumps the split's samples in the order of
    the annotation file; a ``frame_dir`` in the dump must agree.
    """
    with open(ann_file, 'rb') as file:
        data = pickle.load(file)
    members = set(data['split'][split])
    names = [a['frame_dir'] for a in data['annotations']
             if a['frame_dir'] in members]
    with open(path, 'rb') as file:
        dumped = pickle.load(file)
    assert len(dumped) == len(names)
    for name, prediction in zip(names, dumped):
        assert prediction.get('frame_dir', name) == name
    return {name: np.asarray(prediction['pred_score'])
            for name, prediction in zip(names, dumped)}


@pytest.fixture(scope='module')
def baseline(tmp_path_factory, ntu60_pickle):
    """A one-epoch baseline checkpoint and its ``tools/test.py`` dump."""
    work = tmp_path_factory.mktemp('infer_baseline')
    run_ok('tools/train.py', BASELINE, '--work-dir', str(work), '--seed',
           '0', '--cfg-options', *tiny_options(ntu60_pickle),
           'train_cfg.max_epochs=1')
    checkpoint = work / 'epoch_1.pth'
    run_ok('tools/test.py', BASELINE, str(checkpoint), '--work-dir',
           str(work / 'test'), '--dump', str(work / 'preds.pkl'),
           '--cfg-options', *tiny_options(ntu60_pickle))
    return checkpoint, read_dump(work / 'preds.pkl', ntu60_pickle)


@pytest.fixture(scope='module')
def baseline_model(baseline, ntu60_pickle):
    """The baseline checkpoint loaded for inference, with its config."""
    cfg = tiny_cfg(BASELINE, ntu60_pickle)
    return cfg, init_inference_model(cfg, str(baseline[0]), 'cpu')


def test_cli_prints_the_top5_of_tools_test(baseline, ntu60_pickle,
                                          tmp_path):
    checkpoint, dumped = baseline
    name = sorted(dumped)[0]
    out = tmp_path / 'prediction.json'
    result = run_ok('tools/infer.py', BASELINE, str(checkpoint),
                    str(ntu60_pickle), '--sample', name, '--device', 'cpu',
                    '--out', str(out), '--cfg-options',
                    *tiny_options(ntu60_pickle))
    written = json.loads(out.read_text())
    np.testing.assert_allclose(written['scores'], dumped[name], atol=1e-5)
    assert written['label'] == int(name[-3:]) - 1
    rows = ROW.findall(result.stdout)
    assert [int(rank) for rank, *_ in rows] == [1, 2, 3, 4, 5]
    expected = np.argsort(-dumped[name], kind='stable')[:5]
    assert [int(index) for _, _, index, _ in rows] == list(expected)
    from cocodiff_mm.datasets.label_names import NTU60_CLASSES
    assert [label for _, label, _, _ in rows] == [
        NTU60_CLASSES[i] for i in expected]
    assert [float(score) for *_, score in rows] == pytest.approx(
        np.sort(dumped[name])[::-1][:5], abs=1e-4)
    assert [row['index'] for row in written['top']] == list(expected)
    assert f'[{name}]' in result.stdout and 'labelled' in result.stdout


def test_scores_equal_the_dump_on_every_sample(baseline, baseline_model,
                                               ntu60_pickle):
    _, dumped = baseline
    cfg, model = baseline_model
    for name in sorted(dumped)[:12]:
        scores = classify_clip(cfg, '', str(ntu60_pickle), sample=name,
                               model=model).scores
        np.testing.assert_allclose(scores, dumped[name], atol=1e-5,
                                   err_msg=name)


def test_npy_arrays_in_both_layouts(baseline, baseline_model, ntu60_pickle,
                                    tmp_path):
    _, dumped = baseline
    cfg, model = baseline_model
    name = sorted(dumped)[1]
    sample = load_clip(ntu60_pickle, sample=name)
    both = tmp_path / 'both_persons.npy'
    np.save(both, sample['keypoint'].astype(np.float64))  # (M, T, V, C)
    prediction = classify_clip(cfg, '', str(both), model=model)
    np.testing.assert_allclose(prediction.scores, dumped[name], atol=1e-5)
    assert prediction.label == -1 and len(prediction.top(5)) == 5

    one = tmp_path / 'one_person.npy'
    np.save(one, sample['keypoint'][0])  # (T, V, C)
    np.save(tmp_path / 'one_person_m1.npy', sample['keypoint'][:1])
    scores = classify_clip(cfg, '', str(one), model=model).scores
    scores_m1 = classify_clip(cfg, '', str(tmp_path / 'one_person_m1.npy'),
                              model=model).scores
    np.testing.assert_allclose(scores, scores_m1, atol=1e-6)
    assert not np.array_equal(scores, prediction.scores)  # one of two


def test_real_ntu_raw_file(request):
    raw = shared_data_dir() / 'ntu_raw_sample' / \
        'S001C001P001R001A001.skeleton'
    if not raw.is_file():
        pytest.skip(f'real NTU raw sample not found at {raw} (set '
                    'COCODIFF_SHARED_DATA)')
    cfg, model = request.getfixturevalue('baseline_model')
    prediction = classify_clip(cfg, '', str(raw), model=model)
    assert prediction.label == 0  # A001
    assert prediction.class_names[0] == 'drink water'
    assert '103 frames, 1 person(s), 25 joints' in prediction.description
    scores = prediction.scores
    assert scores.shape == (60, ) and np.all(scores >= 0)
    assert scores.sum() == pytest.approx(1.0, abs=1e-4)


def test_kinetics_json_with_a_kinetics_config(tmp_path):
    clips = sorted((shared_data_dir() / 'kinetics_skeleton_sample' /
                    'clips').glob('*.json'))
    names_file = shared_data_dir() / 'kinetics_skeleton_sample' / \
        'kinetics400_label_names.txt'
    if not clips or not names_file.is_file():
        pytest.skip('real Kinetics-Skeleton clips not found under '
                    f'{shared_data_dir()} (set COCODIFF_SHARED_DATA)')
    from mmaction.registry import MODELS
    from mmengine.registry import init_default_scope
    cfg = Config.fromfile(str(REPO / KINETICS))
    cfg.merge_from_dict({
        'model.backbone.base_channels': 8, 'model.cls_head.in_channels': 32,
        'test_dataloader.dataset.pipeline.2.clip_len': 16,
        'test_dataloader.dataset.pipeline.2.num_clips': 1})
    init_default_scope('mmaction')
    torch.manual_seed(0)
    checkpoint = tmp_path / 'kinetics_init.pth'
    torch.save(dict(state_dict=MODELS.build(cfg.model).state_dict()),
               checkpoint)
    prediction = classify_clip(cfg, str(checkpoint), str(clips[0]),
                               device='cpu')
    official = names_file.read_text().splitlines()
    label_text = json.loads(clips[0].read_text())['label']
    assert prediction.label == official.index(label_text)
    assert "class texts 'kinetics400'" in prediction.names_source
    assert prediction.scores.shape == (400, )
    assert '18 joints, 2 + score channels' in prediction.description


@pytest.fixture(scope='module')
def infer_main():
    return load_tool('infer').main


def test_bad_inputs_exit_2_with_one_line(baseline, ntu60_pickle, tmp_path,
                                         infer_main, capsys):
    checkpoint = str(baseline[0])
    rng = np.random.default_rng(0)
    np.save(tmp_path / 'joints18.npy', rng.normal(size=(2, 20, 18, 3)))
    np.save(tmp_path / 'empty.npy', np.zeros((1, 0, 25, 3), np.float32))
    np.save(tmp_path / 'nan.npy', np.full((1, 4, 25, 3), np.nan))
    (tmp_path / 'no_body.skeleton').write_text('3\n0\n0\n0\n')
    (tmp_path / 'cut.skeleton').write_text('5\n1\n')
    (tmp_path / 'broken.json').write_text('{"data": [')
    (tmp_path / 'clip.txt').write_text('x')
    cases = {
        'joints18.npy': 'V = 18 joints',
        'empty.npy': 'empty sequence',
        'nan.npy': 'non-finite',
        'no_body.skeleton': 'empty clip, no body',
        'cut.skeleton': 'cut.skeleton:',
        'broken.json': 'invalid JSON',
        'clip.txt': 'unknown input format',
        'absent.npy': 'no such file',
    }
    options = ['--cfg-options', *tiny_options(ntu60_pickle)]
    for name, message in cases.items():
        path = str(tmp_path / name)
        assert infer_main([BASELINE, checkpoint, path, *options]) == 2, name
        # One error line (import-time warnings of a first run aside).
        err = [line for line in capsys.readouterr().err.splitlines()
               if 'Warning' not in line and line.strip()
               and not line.startswith('  ')]
        assert len(err) == 1 and err[0].startswith('error: ') and \
            message in err[0] and path in err[0], (name, err)
    assert infer_main([BASELINE, checkpoint, str(ntu60_pickle),
                       *options]) == 2
    assert '--sample FRAME_DIR' in capsys.readouterr().err
    assert infer_main([BASELINE, checkpoint, str(ntu60_pickle), '--sample',
                       'S999', *options]) == 2
    assert "no sample with frame_dir 'S999'" in capsys.readouterr().err


def test_cli_refuses_wrong_joints_before_loading_the_model(baseline,
                                                           tmp_path):
    np.save(tmp_path / 'joints18.npy', np.ones((30, 18, 3), np.float32))
    result = run_tool('tools/infer.py', BASELINE, str(baseline[0]),
                      str(tmp_path / 'joints18.npy'))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith('error: ') and 'V = 18 joints' in lines[-1]
    assert "the config's model reads 25 joints" in lines[-1]
    assert not ROW.search(result.stdout)


def test_a_checkpoint_of_another_width_is_refused(baseline, ntu60_pickle,
                                                  infer_main, capsys):
    # The CLI's one-line refusal is in tests/test_faults.py. Without
    # base_channels=8 the config builds the full-width model.
    with pytest.raises(CheckpointMismatchError):
        init_inference_model(Config.fromfile(str(REPO / BASELINE)),
                             str(baseline[0]), 'cpu')
    absent = str(baseline[0].with_name('absent.pth'))
    assert infer_main([BASELINE, absent, str(ntu60_pickle), '--sample',
                       'S001C001P001R001A001']) == 2
    assert absent in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert infer_main([BASELINE, str(baseline[0]), str(ntu60_pickle),
                           '--sample', 'S001C001P001R001A001', '--device',
                           'cuda:0']) == 2
        assert 'CUDA is not available' in capsys.readouterr().err


@pytest.fixture(scope='module')
def cocodiff(tmp_path_factory, ntu60_pickle, text_bank_cache,
             tiny_cocodiff_run):
    """A CoCoDiff checkpoint (one epoch per stage) and its test dump."""
    work = tmp_path_factory.mktemp('infer_cocodiff')
    options = tiny_options(ntu60_pickle, text_bank_cache)
    checkpoint = tiny_cocodiff_run / 'epoch_3.pth'
    run_ok('tools/test.py', COCODIFF, str(checkpoint), '--work-dir',
           str(work / 'test'), '--dump', str(work / 'preds.pkl'),
           '--cfg-options', *options)
    return checkpoint, read_dump(work / 'preds.pkl', ntu60_pickle)


def test_cocodiff_checkpoint_infers_without_the_diffusion(
        cocodiff, ntu60_pickle, monkeypatch):
    from mmaction.models.heads import GCNHead

    from cocodiff_mm.models.heads.diffusion_augmented_head import \
        DiffusionAugmentedHead
    from cocodiff_mm.models.text.text_bank import TextEmbeddingBank

    def refuse(*args, **kwargs):
        raise AssertionError('a training-only part was built')

    monkeypatch.setattr(DiffusionAugmentedHead, '__init__', refuse)
    monkeypatch.setattr(TextEmbeddingBank, '__init__', refuse)
    checkpoint, dumped = cocodiff
    assert any(k.startswith('cls_head.denoiser.') for k in torch.load(
        checkpoint, map_location='cpu', weights_only=False)['state_dict'])
    cfg = tiny_cfg(COCODIFF, ntu60_pickle)  # no text-bank options needed
    assert cfg.model.cls_head.type == 'DiffusionAugmentedHead'
    model = init_inference_model(cfg, str(checkpoint), 'cpu')
    assert type(model.cls_head) is GCNHead
    assert not [name for name, _ in model.named_modules()
                if 'denoiser' in name or 'diffusion' in name
                or 'text_bank' in name]
    names, source = choose_class_names(cfg)
    assert source == "class texts 'ntu120' of the config"
    for name in sorted(dumped)[:6]:
        prediction = classify_clip(cfg, '', str(ntu60_pickle), sample=name,
                                   model=model)
        assert prediction.top(1)[0][0] == int(dumped[name].argmax())
        np.testing.assert_allclose(prediction.scores, dumped[name],
                                   atol=1e-5)


def test_inference_head_keeps_the_classifier_arguments():
    model = dict(type='RecognizerGCN', backbone=dict(type='CTRGCN'),
                 cls_head=dict(type='DiffusionAugmentedHead', num_classes=7,
                               in_channels=16, dropout=0.5,
                               average_clips='score',
                               loss_cls=dict(type='CrossEntropyLoss',
                                             loss_weight=2.0),
                               text_bank=dict(texts='ntu120'),
                               denoiser=dict(type='ConditionalMLPUNet')))
    head = inference_model_cfg(model).cls_head
    assert head.to_dict() == dict(
        type='GCNHead', num_classes=7, in_channels=16, dropout=0.5,
        average_clips='score',
        loss_cls=dict(type='CrossEntropyLoss', loss_weight=2.0))
    assert model['cls_head']['type'] == 'DiffusionAugmentedHead'
    plain = dict(model, cls_head=dict(type='GCNHead', num_classes=7,
                                      in_channels=16))
    assert inference_model_cfg(plain).cls_head.to_dict() == \
        plain['cls_head']


def test_class_names_by_file_texts_count_or_index(tmp_path):
    cfg = Config(dict(model=dict(cls_head=dict(type='GCNHead',
                                               num_classes=27))))
    names, source = choose_class_names(cfg)
    assert names[0] == 'right arm swipe to the left'
    assert 'UTD-MHAD' in source
    listing = tmp_path / 'names.txt'
    listing.write_text(''.join(f'action {i}\n' for i in range(27)))
    names, source = choose_class_names(cfg, listing)
    assert names[26] == 'action 26' and source == str(listing)
    listing.write_text('a\nb\n')
    with pytest.raises(ValueError, match='2 names, but the config has 27'):
        choose_class_names(cfg, listing)
    cfg.model.cls_head.num_classes = 9  # no known list of 9 classes
    names, source = choose_class_names(cfg)
    assert names == tuple(f'class {i}' for i in range(9))
    assert '--label-names' in source
    texts = Config(dict(model=dict(cls_head=dict(
        type='DiffusionAugmentedHead', num_classes=8,
        text_bank=dict(texts='demo')))))
    assert choose_class_names(texts)[0][0] == 'wave right hand'


def test_sample_option_is_for_pickles_only(tmp_path):
    path = tmp_path / 'clip.npy'
    np.save(path, np.zeros((4, 25, 3), np.float32))
    with pytest.raises(ClipInputError, match='--sample picks a sample'):
        load_clip(path, sample='S001')


def _last_error(capsys) -> str:
    """The one ``error:`` line of a refused run."""
    err = [line for line in capsys.readouterr().err.splitlines()
           if line.startswith('error: ')]
    assert len(err) == 1, err
    return err[0]


def test_an_empty_clip_is_refused_before_the_model(infer_main, tmp_path,
                                                   capsys):
    absent = str(tmp_path / 'absent.pth')  # never read: the clip fails first
    for name, clip, kind in (
            ('zeros.npy', np.zeros((2, 20, 25, 3), np.float32), 'all-zero'),
            ('flat.npy', np.full((20, 25, 3), 0.5, np.float32),
             'near-constant')):
        path = tmp_path / name
        np.save(path, clip)
        assert infer_main([BASELINE, absent, str(path)]) == 2, name
        error = _last_error(capsys)
        assert error.startswith(f'error: {path}: {kind} clip'), error
        assert 'absent.pth' not in error


def test_out_is_checked_before_the_clip_is_read(infer_main, tmp_path,
                                                capsys):
    blocker = tmp_path / 'a_file'
    blocker.write_text('x')
    out = blocker / 'prediction.json'
    assert infer_main([BASELINE, str(tmp_path / 'absent.pth'),
                       str(tmp_path / 'absent.npy'), '--out',
                       str(out)]) == 2
    error = _last_error(capsys)
    assert error.startswith(f'error: --out {out}: ') and \
        'absent' not in error.split(':', 2)[2], error


def test_non_finite_scores_are_refused(tmp_path, monkeypatch):
    from cocodiff_mm.apis import inference

    path = tmp_path / 'clip.npy'
    np.save(path, np.random.default_rng(0).normal(size=(20, 25, 3)))
    scores = np.linspace(0, 1, 60).astype(np.float32)
    scores[[3, 7]] = np.nan
    monkeypatch.setattr(inference, 'predict_scores',
                        lambda model, clip, pipeline: scores)
    cfg = Config.fromfile(str(REPO / BASELINE))
    with pytest.raises(ClipInputError) as error:
        classify_clip(cfg, 'model.pth', str(path), model=object())
    assert str(error.value).startswith(
        f'{path}: model.pth gave 2 non-finite class scores (NaN/inf)')
