"""Tests of the CTR-GCN backbone (``cocodiff_mm.models.backbones.ctrgcn``)."""
from pathlib import Path

import pytest
import torch
from conftest import build_gcn_recognizer, parameters_without_gradient
import torch.nn as nn

import cocodiff_mm  # noqa: F401,I001  (runtime fixes before mmaction2)
from mmaction.models.utils import Graph, unit_tcn
from mmaction.registry import MODELS
from mmengine.config import Config
from mmengine.registry import init_default_scope

from cocodiff_mm.datasets.layouts import UTD_MHAD_LAYOUT
from cocodiff_mm.models.backbones.ctrgcn import (CTRGCN, CTRGraphConv,
                                                 MultiScaleTemporalConv,
                                                 count_parameters)

REPO = Path(__file__).resolve().parents[1]

#: Trainable parameters of CTRGCN(nturgb+d, spatial) + GCNHead(60 classes),
#: pinned as a regression check (the paper reports about 1.46 M).
NTU60_PARAMETERS = 1_446_672

NTU_GRAPH = dict(layout='nturgb+d', mode='spatial')

init_default_scope('mmaction')




def build_recognizer(graph_cfg: dict = None, num_classes: int = 60,
                     **backbone) -> nn.Module:
    """RecognizerGCN with a CTRGCN backbone and a GCNHead."""
    backbone = dict(type='CTRGCN', graph_cfg=graph_cfg or NTU_GRAPH,
                    **backbone)
    return build_gcn_recognizer(
        backbone, backbone.get('base_channels', 64) * 4, num_classes)


def test_registered_in_mmaction_models():
    assert MODELS.get('CTRGCN') is CTRGCN


def test_parameter_count_matches_paper():
    model = build_recognizer()
    count = count_parameters(model)
    assert abs(count - 1.46e6) / 1.46e6 < 0.02, count
    assert count == NTU60_PARAMETERS
    assert count == sum(p.numel() for p in model.parameters())


def test_count_parameters_skips_frozen():
    layer = nn.Linear(3, 2)
    layer.bias.requires_grad_(False)
    assert count_parameters(layer) == 6


@pytest.mark.parametrize('graph_cfg, num_joints, num_person', [
    (dict(layout='nturgb+d', mode='spatial'), 25, 2),
    (dict(layout='openpose', mode='spatial'), 18, 2),
    (dict(layout=UTD_MHAD_LAYOUT, mode='spatial'), 20, 1),
],
                         ids=['nturgb+d', 'openpose', 'utd_mhad'])
def test_output_shape(graph_cfg, num_joints, num_person):
    backbone = CTRGCN(graph_cfg=graph_cfg, num_person=num_person)
    backbone.init_weights()
    backbone.eval()
    x = torch.randn(2, num_person, 32, num_joints, 3)
    with torch.no_grad():
        out = backbone(x)
    assert out.shape == (2, num_person, 256, 8, num_joints)
    assert backbone.out_channels == 256
    assert torch.isfinite(out).all()


def test_base_channels_sets_output_channels():
    backbone = CTRGCN(graph_cfg=NTU_GRAPH, base_channels=16)
    backbone.eval()
    with torch.no_grad():
        out = backbone(torch.randn(1, 2, 16, 25, 3))
    assert backbone.out_channels == 64
    assert out.shape == (1, 2, 64, 4, 25)


def test_wrong_channels_rejected():
    backbone = CTRGCN(graph_cfg=NTU_GRAPH, in_channels=3)
    with pytest.raises(ValueError, match='expects 3 input channels.*got 2'):
        backbone(torch.randn(1, 2, 8, 25, 2))


def test_wrong_person_count_rejected_with_mvc():
    backbone = CTRGCN(graph_cfg=NTU_GRAPH, num_person=2, data_bn_type='MVC')
    with pytest.raises(ValueError, match='num_person=2.*1 persons'):
        backbone(torch.randn(1, 1, 8, 25, 3))


def test_unknown_data_bn_type_rejected():
    with pytest.raises(
            ValueError,
            match=r"data_bn_type must be one of \('MVC', 'VC', 'none'\)"):
        CTRGCN(graph_cfg=NTU_GRAPH, data_bn_type='MV')


def test_indivisible_channels_rejected():
    # Four TCN branches (two dilations, max-pool, 1x1) share the channels.
    with pytest.raises(ValueError, match='divisible'):
        CTRGCN(graph_cfg=NTU_GRAPH, base_channels=30)


@pytest.mark.parametrize('data_bn_type, expected', [
    ('MVC', nn.BatchNorm1d),
    ('VC', nn.BatchNorm1d),
    ('none', nn.Identity),
])
def test_data_bn_types(data_bn_type, expected):
    backbone = CTRGCN(graph_cfg=NTU_GRAPH, base_channels=16, num_stages=2,
                      data_bn_type=data_bn_type)
    assert type(backbone.data_bn) is expected
    if data_bn_type == 'MVC':
        assert backbone.data_bn.num_features == 2 * 25 * 3
    elif data_bn_type == 'VC':
        assert backbone.data_bn.num_features == 25 * 3
    # Only 'MVC' ties the model to num_person.
    persons = 2 if data_bn_type == 'MVC' else 3
    out = backbone(torch.randn(2, persons, 8, 25, 3))
    assert out.shape == (2, persons, 16, 8, 25)


def test_init_weights_is_recallable_and_resets():
    backbone = CTRGCN(graph_cfg=NTU_GRAPH, base_channels=16)
    torch.manual_seed(0)
    backbone.init_weights()
    initial = {k: v.clone() for k, v in backbone.named_parameters()}

    # The paper's start: each spatial unit near its residual path.
    units = [m for m in backbone.modules() if isinstance(m, CTRGraphConv)]
    assert len(units) == 10
    adjacency = torch.as_tensor(backbone.graph.A, dtype=torch.float32)
    for unit in units:
        assert torch.all(unit.alpha == 0)
        assert torch.allclose(unit.bn.weight, torch.full_like(
            unit.bn.weight, 1e-6))
        assert torch.equal(unit.adjacency, adjacency)

    with torch.no_grad():
        for param in backbone.parameters():
            param.add_(torch.randn_like(param))
    changed = {k: v.clone() for k, v in backbone.named_parameters()}
    assert all(not torch.equal(changed[k], initial[k]) for k in initial)

    torch.manual_seed(0)
    backbone.init_weights()
    for name, param in backbone.named_parameters():
        assert torch.equal(param, initial[name]), name
    assert backbone.is_init


def test_init_cfg_applies_on_top_of_the_paper_init():
    backbone = CTRGCN(graph_cfg=NTU_GRAPH, base_channels=16,
                      init_cfg=dict(type='Constant', layer='Conv2d', val=0.5,
                                    bias=0.25))
    for _ in range(2):  # at build time, and again when re-initialised
        backbone.init_weights()
        convs = [m for m in backbone.modules() if isinstance(m, nn.Conv2d)]
        assert convs and all(
            torch.all(m.weight == 0.5) and torch.all(m.bias == 0.25)
            for m in convs)
        # What init_cfg does not reach keeps the paper's initialisation.
        for unit in backbone.modules():
            if isinstance(unit, CTRGraphConv):
                assert torch.all(unit.bn.weight == 1e-6)
        with torch.no_grad():
            for param in backbone.parameters():
                param.add_(1.0)


def test_pretrained_init_cfg_loads_the_checkpoint(tmp_path):
    source = CTRGCN(graph_cfg=NTU_GRAPH, base_channels=16)
    with torch.no_grad():
        for param in source.parameters():
            param.add_(torch.randn_like(param))
    checkpoint = tmp_path / 'baseline.pth'
    torch.save(dict(state_dict={f'backbone.{k}': v
                                for k, v in source.state_dict().items()}),
               checkpoint)
    # Through the recognizer, as the Runner initialises a model.
    model = build_recognizer(
        base_channels=16,
        init_cfg=dict(type='Pretrained', checkpoint=str(checkpoint),
                      prefix='backbone.'))
    model.init_weights()
    for key, value in source.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[key], value), key


def test_temporal_convs_are_mmaction_unit_tcn():
    backbone = CTRGCN(graph_cfg=NTU_GRAPH, base_channels=16)
    block = backbone.gcn[4]  # stride 2, 16 -> 32 channels
    assert type(block.residual) is unit_tcn
    assert block.residual.conv.stride == (2, 1)
    dilated = [branch[-1] for branch in block.tcn.branches[:2]]
    assert all(type(tcn) is unit_tcn for tcn in dilated)
    assert [tcn.conv.dilation for tcn in dilated] == [(1, 1), (2, 1)]
    assert [tcn.conv.padding for tcn in dilated] == [(2, 0), (4, 0)]
    keys = backbone.state_dict()
    assert 'gcn.4.residual.conv.weight' in keys
    assert 'gcn.4.tcn.branches.1.3.bn.running_var' in keys


def test_tcn_bn_initialised_near_one():
    backbone = CTRGCN(graph_cfg=NTU_GRAPH, base_channels=16)
    backbone.init_weights()
    tcn = next(m for m in backbone.modules()
               if isinstance(m, MultiScaleTemporalConv))
    weights = torch.cat([m.weight for m in tcn.modules()
                         if isinstance(m, nn.BatchNorm2d)])
    assert 0.9 < weights.mean() < 1.1
    assert weights.std() > 0  # drawn from N(1, 0.02), not constant


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    model = build_recognizer(base_channels=16)
    model.init_weights()
    # At initialisation alpha = 0 blocks the refinement branch; a trained
    # model has alpha != 0, and then every weight must get a gradient.
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, CTRGraphConv):
                module.alpha.fill_(0.5)
    missing = parameters_without_gradient(model)
    assert not missing, missing


def test_utd_model_config_uses_utd_layout():
    cfg = Config.fromfile(
        str(REPO / 'configs/_base_/models/ctrgcn_utd_mhad.py'))
    layout = cfg.model.backbone.graph_cfg.layout
    assert layout['num_node'] == UTD_MHAD_LAYOUT['num_node']
    assert layout['center'] == UTD_MHAD_LAYOUT['center']
    assert [tuple(edge) for edge in layout['inward']] == [
        tuple(edge) for edge in UTD_MHAD_LAYOUT['inward']]
    ours = Graph(layout=dict(layout), mode='spatial').A
    reference = Graph(layout=UTD_MHAD_LAYOUT, mode='spatial').A
    assert (ours == reference).all()
    assert cfg.model.backbone.num_person == 1
