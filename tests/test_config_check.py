"""Config keys are checked like data: a typo is refused naming the file,
the key, the allowed keys and the closest one; class texts are checked
against the head. ``tools/train.py`` on such configs (exit 2, one line, no
work dir; the traceback with ``--debug``) is in ``tests/test_faults.py``."""
import argparse
import glob

import pytest
from mmengine.config import Config

from conftest import REPO
from cocodiff_mm.engine.config_check import (check_buildable,
                                             check_class_texts,
                                             check_config_keys,
                                             check_stage_plan)
from cocodiff_mm.utils.config_keys import ConfigError, ConfigKeyError

CONFIG = 'configs/ctrgcn_cocodiff_demo.py'


def parse_option(option: str) -> dict:
    """``--cfg-options key=value`` parsed as the tools parse it."""
    from mmengine.config import DictAction
    namespace = argparse.Namespace()
    DictAction(option_strings=[], dest='options')(None, namespace, [option])
    return namespace.options


@pytest.mark.parametrize(
    'config', sorted(glob.glob(str(REPO / 'configs' / '*.py'))))
def test_every_shipped_config_passes(config):
    cfg = Config.fromfile(config)
    check_config_keys(cfg)
    check_stage_plan(cfg)
    # What the Runner builds (model, optimizer, schedulers, hooks,
    # pipelines, evaluators): the pre-run check refuses no shipped config.
    check_buildable(cfg, ('train_dataloader', 'val_dataloader'))
    check_buildable(cfg, ('test_dataloader', ))


@pytest.mark.parametrize('option, message', [
    ('train_cfg.stage1.epoch=1',
     "train_cfg.stage1.epoch is not an option (did you mean 'epochs'?)"),
    ('train_cfg.pretraind=x',
     "train_cfg.pretraind is not an option (did you mean 'pretrained'?)"),
    ('model.cls_head.generation.grad_step=1',
     "model.cls_head.generation.grad_step is not an option (did you mean "
     "'grad_steps'?)"),
    ('model.cls_head.text_bank.encodr=minilm',
     "model.cls_head.text_bank.encodr is not an option (did you mean "
     "'encoder'?)"),
    ('model.cls_head.diffusion.num_step=3',
     "model.cls_head.diffusion.num_step is not an option (did you mean "
     "'num_steps'?)"),
    ('model.cls_head.denoiser.width=(8,)',
     "model.cls_head.denoiser.width is not an option (did you mean "
     "'widths'?)"),
    ('model.cls_head.loss_text.loss_weigth=2',
     "model.cls_head.loss_text.loss_weigth is not an option (did you mean "
     "'loss_weight'?)"),
    ('model.cls_head.detach_reel=False',
     "model.cls_head.detach_reel is not an option (did you mean "
     "'detach_real'?)"),
    ('custom_hooks.0.warmup_epoch=2',
     "custom_hooks[0].warmup_epoch is not an option (did you mean "
     "'warmup_epochs'?)"),
])
def test_a_typo_is_named_with_the_closest_key(option, message):
    cfg = Config.fromfile(str(REPO / CONFIG))
    cfg.merge_from_dict(parse_option(option))
    with pytest.raises(ConfigKeyError) as error:
        check_config_keys(cfg)
    assert str(error.value).startswith(f'{cfg.filename}: {message}; '
                                       'allowed: [')


def test_the_loop_refuses_a_stage_typo_also_outside_tools():
    from cocodiff_mm.engine.stage_plan import plan_stages
    with pytest.raises(ConfigKeyError, match=r"train_cfg.stage2.epoch is "
                       r"not an option \(did you mean 'epochs'\?\)"):
        plan_stages(None, dict(epochs=1), dict(epoch=3), 'pretrained',
                    has_pretrained=True)


@pytest.mark.parametrize('texts, message', [
    ('utd_mhad', "model.cls_head.text_bank.texts='utd_mhad': class texts "
     "'utd_mhad'"),
    ('BROKEN', 'not valid JSON'),
    ('nowhere.json', 'nowhere.json'),
])
def test_class_texts_are_checked(tmp_path, texts, message):
    """The head asks for 40 classes: more than any of these texts have."""
    if texts == 'BROKEN':
        texts = str(tmp_path / 'broken.json')
        (tmp_path / 'broken.json').write_text('{"name": "x"')
    cfg = Config.fromfile(str(REPO / CONFIG))
    cfg.merge_from_dict({'model.cls_head.text_bank.texts': texts,
                         'model.cls_head.num_classes': 40})
    with pytest.raises(ConfigError) as error:
        check_class_texts(cfg)
    assert str(error.value).startswith(f'{cfg.filename}: ')
    assert message in str(error.value)



@pytest.mark.parametrize('options, message', [
    ({'train_cfg.stage1.faithfulness_target': 1.5},
     'train_cfg.stage1.faithfulness_target must be a fraction in (0, 1] '
     '(e.g. 0.8) or None, got 1.5'),
    ({'train_cfg.stage1.faithfulness_target': '80%'},
     "must be a fraction in (0, 1] (e.g. 0.8) or None, got '80%'"),
    ({'train_cfg.stage1.faithfulness_target': True},
     'must be a fraction in (0, 1] (e.g. 0.8) or None, got True'),
    ({'train_cfg.stage1.faithfulness_target': 0.8, 'custom_hooks': []},
     "train_cfg.stage1.faithfulness_target needs dict(type='Generation"
     "DiagnosticsHook') in custom_hooks"),
    ({'train_cfg.stage2.epochs': 0},
     'train_cfg.stage2.epochs must be > 0'),
    ({'train_cfg.stage1.epochs': '3'},
     "train_cfg.stage1.epochs must be an int >= 0, got '3'"),
    ({'train_cfg.stage1_source': 'scratch'},
     "train_cfg.stage1_source must be one of ('pretrained', 'untrained', "
     "'none'), got 'scratch'"),
])
def test_the_stage_plan_is_checked_before_training(options, message):
    """tools/ plan the stages with the loop's own validator."""
    cfg = Config.fromfile(str(REPO / CONFIG))
    check_stage_plan(cfg)  # no target: nothing to measure
    cfg.merge_from_dict({'train_cfg.stage1.faithfulness_target': 0.8})
    check_stage_plan(cfg)  # a target and the shipped hooks
    cfg.merge_from_dict(options)
    with pytest.raises(ConfigError) as error:
        check_stage_plan(cfg)
    assert str(error.value).startswith(f'{cfg.filename}: ')
    assert message in str(error.value)


def test_only_stage1_takes_a_faithfulness_target():
    cfg = Config.fromfile(str(REPO / CONFIG))
    cfg.merge_from_dict({'train_cfg.stage2.faithfulness_target': 0.8})
    with pytest.raises(ConfigKeyError, match='train_cfg.stage2.'
                       'faithfulness_target is not an option'):
        check_config_keys(cfg)


@pytest.mark.parametrize('options, message', [
    ({'custom_hooks.3.interval': '2'},
     "GenerationDiagnosticsHook.interval must be an int >= 1, got '2'"),
    ({'custom_hooks.3.max_samples': 1},
     'GenerationDiagnosticsHook.max_samples must be an int >= 2, got 1'),
    ({'custom_hooks.0.warmup_epochs': -1},
     'GeneratedLossRampHook.warmup_epochs must be a number >= 0, got -1'),
])
def test_hook_arguments_are_checked_before_training(options, message):
    cfg = Config.fromfile(str(REPO / CONFIG))
    cfg.merge_from_dict(options)
    with pytest.raises(ConfigError) as error:
        check_buildable(cfg, ('train_dataloader', 'val_dataloader'))
    assert str(error.value).startswith(f'{cfg.filename}: custom_hooks[')
    assert message in str(error.value)
