"""Tests of the HD-GCN backbone (``cocodiff_mm.models.backbones.hdgcn``)."""
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import build_gcn_recognizer, parameters_without_gradient
import torch.nn as nn

import cocodiff_mm  # noqa: F401,I001  (runtime fixes before mmaction2)
from mmaction.registry import MODELS
from mmaction.structures import ActionDataSample
from mmengine.optim import OptimWrapper
from mmengine.registry import init_default_scope

from cocodiff_mm.datasets.layouts import UTD_MHAD_LAYOUT
from cocodiff_mm.models.backbones.ctrgcn import count_parameters
from cocodiff_mm.models.backbones.hdgcn import (HDGCN, EdgeConv,
                                                HDGraphConv,
                                                HierarchyAttention)
from cocodiff_mm.models.backbones.skeleton_graph import (
    hierarchical_adjacency, hierarchy_levels, resolve_layout)

#: Trainable parameters of HDGCN(nturgb+d) + GCNHead(60 classes, 15,420 of
#: them), pinned as a regression check; the paper reports 1.66 M.
NTU60_PARAMETERS = 1_659_980
PUBLISHED_PARAMETERS = 1.66e6

NTU_GRAPH = dict(layout='nturgb+d')

#: A 5-joint chain 0-1-2-3-4.
CHAIN = dict(num_node=5, inward=[(0, 1), (1, 2), (3, 2), (4, 3)], center=2)

REPO = Path(__file__).resolve().parents[1]

init_default_scope('mmaction')



def build_recognizer(graph_cfg: dict = None, num_classes: int = 60,
                     **backbone) -> nn.Module:
    """RecognizerGCN with an HDGCN backbone and a GCNHead."""
    backbone = dict(type='HDGCN', graph_cfg=graph_cfg or NTU_GRAPH,
                    **backbone)
    return build_gcn_recognizer(
        backbone, backbone.get('base_channels', 64) * 4, num_classes)


def test_registered_in_mmaction_models():
    assert MODELS.get('HDGCN') is HDGCN


def test_parameter_count_matches_paper():
    model = build_recognizer()
    count = count_parameters(model)
    assert count == NTU60_PARAMETERS
    assert abs(count - PUBLISHED_PARAMETERS) / PUBLISHED_PARAMETERS < 0.03
    assert count == sum(p.numel() for p in model.parameters())


# Hierarchy: joint sets by hop distance from the centre, and the 3-subset
# adjacency between consecutive sets, checked by hand.


def test_chain_hierarchy_by_hand():
    num_node, edges, center = resolve_layout(CHAIN)
    levels = hierarchy_levels(num_node, edges, center)
    assert levels == [[2], [1, 3], [0, 4]]
    A = hierarchical_adjacency(levels, num_node)
    assert A.shape == (2, 3, 5, 5) and A.dtype == np.float32
    # A[l, s, v, u]: joint u's message to joint v.
    identity0 = np.diag([0, 1, 1, 1, 0])
    outward0 = np.zeros((5, 5))
    outward0[[1, 3], 2] = 0.5  # the centre sends to its 2 children
    inward0 = np.zeros((5, 5))
    inward0[2, [1, 3]] = 1.0  # each child sends to its 1 parent
    identity1 = np.diag([1, 1, 0, 1, 1])
    # Sets 1 and 2 are connected completely: 1 -> 4 and 3 -> 0 as well.
    outward1 = np.zeros((5, 5))
    outward1[np.ix_([0, 4], [1, 3])] = 0.5
    inward1 = np.zeros((5, 5))
    inward1[np.ix_([1, 3], [0, 4])] = 0.5
    expected = np.stack([np.stack([identity0, outward0, inward0]),
                         np.stack([identity1, outward1, inward1])])
    np.testing.assert_array_equal(A, expected)


def test_star_hierarchy_from_a_leaf():
    # Joint 0 with leaves 1..4; built around leaf 1 instead of the hub.
    star = dict(num_node=5, inward=[(1, 0), (2, 0), (3, 0), (4, 0)],
                center=0)
    num_node, edges, _ = resolve_layout(star)
    assert hierarchy_levels(num_node, edges, 0) == [[0], [1, 2, 3, 4]]
    levels = hierarchy_levels(num_node, edges, 1)
    assert levels == [[1], [0], [2, 3, 4]]
    A = hierarchical_adjacency(levels, num_node)
    assert A.shape == (2, 3, 5, 5)
    np.testing.assert_allclose(A[1, 1][[2, 3, 4], 0], 1 / 3)  # 0 -> leaves
    np.testing.assert_allclose(A[1, 2][0, [2, 3, 4]], 1.0)  # leaves -> 0
    # Every level's directed subsets are column-normalised (each sender
    # splits its message over its receivers).
    for level in A:
        for subset in level[1:]:
            sums = subset.sum(axis=0)
            assert np.allclose(sums[sums > 0], 1.0)


@pytest.mark.parametrize('com, groups', [
    # The paper's hand-written NTU RGB+D joint sets (1-based joints).
    (21, [[21], [2, 3, 5, 9], [1, 4, 6, 10], [7, 11, 13, 17],
          [8, 12, 14, 18], [15, 19, 22, 23, 24, 25], [16, 20]]),
    (2, [[2], [1, 21], [3, 5, 9, 13, 17], [4, 6, 10, 14, 18],
         [7, 11, 15, 19], [8, 12, 16, 20], [22, 23, 24, 25]]),
])
def test_ntu_hierarchy_equals_the_papers_sets(com, groups):
    num_node, edges, center = resolve_layout('nturgb+d')
    assert center == 20  # spine-shoulder: the paper's default CoM 21
    levels = hierarchy_levels(num_node, edges, com - 1)
    assert levels == [sorted(j - 1 for j in g) for g in groups]


@pytest.mark.parametrize('graph_cfg, center, num_levels', [
    (dict(layout='nturgb+d'), 20, 6),
    (dict(layout='openpose'), 1, 4),
    (dict(layout=UTD_MHAD_LAYOUT), 2, 5),
], ids=['nturgb+d', 'openpose', 'utd_mhad'])
def test_default_center_is_the_layouts(graph_cfg, center, num_levels):
    backbone = HDGCN(graph_cfg=graph_cfg, base_channels=16, num_stages=2)
    assert backbone.center == center
    assert backbone.hierarchy.shape[:2] == (num_levels, 3)
    assert sorted(sum(backbone.levels, [])) == list(
        range(backbone.hierarchy.shape[-1]))


def test_center_option_changes_the_hierarchy():
    backbone = HDGCN(graph_cfg=NTU_GRAPH, center=0, base_channels=16,
                     num_stages=2)
    assert backbone.levels[0] == [0]
    assert backbone.levels[1] == [1, 12, 16]


@pytest.mark.parametrize('graph_cfg, message', [
    (dict(layout='kinect'), r"layout: unknown skeleton layout 'kinect'"),
    (dict(layout=dict(num_node=3, inward=[(0, 1)], center=0)),
     r'joints \[2\] are not connected'),
    (dict(layout=dict(num_node=3, inward=[(0, 1)])), r"lacks \['center'\]"),
    (dict(layout=dict(num_node=2, inward=[(0, 2)], center=0)),
     r'edges \[\(0, 2\)\] name joints outside'),
    (dict(layout='nturgb+d', mode='spatial'), r'graph_cfg.mode is not an'),
])
def test_unsupported_layouts_refused_in_one_line(graph_cfg, message):
    with pytest.raises(ValueError, match=message) as error:
        HDGCN(graph_cfg=graph_cfg)
    assert '\n' not in str(error.value)


def test_center_out_of_range_refused():
    with pytest.raises(ValueError, match='model.backbone.center'):
        HDGCN(graph_cfg=NTU_GRAPH, center=25)


# The dynamic parts: EdgeConv and the attention over levels.


def test_edgeconv_with_one_neighbour_is_a_pointwise_map():
    # With k = 1 each point's nearest point is itself: the edge feature is
    # [0, x_i], so the output is LeakyReLU(BN(W_centre x_i)).
    torch.manual_seed(0)
    conv = EdgeConv(4, k=1).eval()
    x = torch.randn(2, 4, 6)
    weight = conv.conv.weight[:, 4:, 0, 0]
    expected = conv.act(conv.bn(torch.einsum('oc,ncp->nop', weight,
                                             x)[..., None]))[..., 0]
    with torch.no_grad():
        assert torch.allclose(conv(x), expected, atol=1e-6)


def test_edgeconv_gathers_the_nearest_points():
    # Points 0 and 1 are close, point 2 far: with k = 2, point 0 sees 0 and
    # 1 only. With W = [I, 0] the max over neighbours of x_j - x_i reads
    # which points were gathered.
    conv = EdgeConv(1, k=2).eval()
    with torch.no_grad():
        conv.conv.weight.copy_(torch.tensor([[1.0, 0.0]]).view(1, 2, 1, 1))
        conv.act.negative_slope = 1.0  # identity, so the max is the max
    x = torch.tensor([[[0.0, 1.0, 10.0]]])
    with torch.no_grad():
        out = conv(x)
    # BN in eval mode with fresh statistics: y / sqrt(1 + eps).
    scale = 1 / math.sqrt(1 + conv.bn.eps)
    assert torch.allclose(out, torch.tensor([[[1.0, 0.0, 0.0]]]) * scale)


def test_attention_pools_the_joints_of_each_level():
    levels = [[0], [1, 2], [3]]
    level_joints = [a + b for a, b in zip(levels[:-1], levels[1:])]
    attention = HierarchyAttention(8, level_joints, num_joints=4)
    expected = torch.tensor([[1 / 3, 1 / 3, 1 / 3, 0.0],
                             [0.0, 1 / 3, 1 / 3, 1 / 3]])
    assert torch.allclose(attention.level_pool, expected)
    assert 'level_pool' not in attention.state_dict()
    attention.eval()
    x = torch.randn(2, 8, 2, 5, 4)
    with torch.no_grad():
        out = attention(x)
    assert out.shape == (2, 8, 5, 4)
    # The gates lie in (0, 1): the output is bounded by the level sum of |x|.
    assert (out.abs() <= x.abs().sum(dim=2) + 1e-6).all()


def test_first_block_sums_levels_later_blocks_attend():
    backbone = HDGCN(graph_cfg=NTU_GRAPH, base_channels=16)
    units = [m for m in backbone.modules() if isinstance(m, HDGraphConv)]
    assert len(units) == 10
    assert units[0].attention is None
    assert all(u.attention is not None for u in units[1:])
    assert all(len(u.edge_convs) == 6 for u in units)


# Contract with RecognizerGCN / GCNHead.


@pytest.mark.parametrize('graph_cfg, num_joints, num_person', [
    (dict(layout='nturgb+d'), 25, 2),
    (dict(layout='openpose'), 18, 2),
    (dict(layout=UTD_MHAD_LAYOUT), 20, 1),
],
                         ids=['nturgb+d', 'openpose', 'utd_mhad'])
def test_output_shape(graph_cfg, num_joints, num_person):
    torch.manual_seed(0)
    backbone = HDGCN(graph_cfg=graph_cfg, num_person=num_person)
    backbone.init_weights()
    backbone.eval()
    x = torch.randn(2, num_person, 16, num_joints, 3)
    with torch.no_grad():
        out = backbone(x)
    assert out.shape == (2, num_person, 256, 4, num_joints)
    assert backbone.out_channels == 256
    assert torch.isfinite(out).all()


def test_wrong_channels_rejected():
    backbone = HDGCN(graph_cfg=NTU_GRAPH, base_channels=16, num_stages=2)
    with pytest.raises(ValueError, match='expects 3 input channels.*got 2'):
        backbone(torch.randn(1, 2, 8, 25, 2))


def test_wrong_person_count_rejected_with_mvc():
    backbone = HDGCN(graph_cfg=NTU_GRAPH, base_channels=16, num_stages=2)
    with pytest.raises(ValueError, match='num_person=2.*1 persons'):
        backbone(torch.randn(1, 1, 8, 25, 3))


def test_init_weights_is_recallable_and_resets():
    backbone = HDGCN(graph_cfg=NTU_GRAPH, base_channels=16, num_stages=3)
    torch.manual_seed(0)
    backbone.init_weights()
    initial = {k: v.clone() for k, v in backbone.named_parameters()}
    for unit in backbone.modules():
        if isinstance(unit, HDGraphConv):
            assert torch.equal(unit.adjacency, backbone.hierarchy)
            assert torch.all(unit.bn.weight == 1e-6)
    with torch.no_grad():
        for param in backbone.parameters():
            param.add_(torch.randn_like(param))
    torch.manual_seed(0)
    backbone.init_weights()
    for name, param in backbone.named_parameters():
        assert torch.equal(param, initial[name]), name


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    model = build_recognizer(base_channels=16)
    model.init_weights()
    missing = parameters_without_gradient(model)
    assert not missing, missing


@pytest.mark.parametrize('graph_cfg, num_joints, num_person', [
    (dict(layout='nturgb+d'), 25, 2),
    (dict(layout=UTD_MHAD_LAYOUT), 20, 1),
], ids=['nturgb+d', 'utd_mhad'])
def test_recognizer_train_step(graph_cfg, num_joints, num_person):
    torch.manual_seed(0)
    model = build_recognizer(graph_cfg, num_classes=5, base_channels=16,
                             num_person=num_person)
    model.init_weights()
    model.train()
    data = dict(
        inputs=[torch.randn(1, num_person, 16, num_joints, 3)
                for _ in range(2)],
        data_samples=[ActionDataSample().set_gt_label(label)
                      for label in (0, 4)])
    optim_wrapper = OptimWrapper(
        torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9))
    adjacency = model.backbone.gcn[1].gcn.adjacency.detach().clone()
    log_vars = model.train_step(data, optim_wrapper)
    assert set(log_vars) >= {'loss', 'loss_cls'}
    assert math.isfinite(float(log_vars['loss'].detach()))
    # The learnable hierarchical adjacency is trained.
    assert not torch.equal(model.backbone.gcn[1].gcn.adjacency, adjacency)
    model.eval()
    with torch.no_grad():
        scores = model(torch.randn(2, 1, num_person, 16, num_joints, 3),
                       [ActionDataSample() for _ in range(2)],
                       mode='predict')
    for sample in scores:
        assert 0 <= sample.pred_score.min() <= sample.pred_score.max() <= 1


# Configs.


def test_utd_config_uses_utd_layout():
    from mmengine.config import Config
    cfg = Config.fromfile(str(REPO / 'configs/hdgcn_utd_mhad.py'))
    backbone = cfg.model.backbone
    assert backbone.type == 'HDGCN' and backbone.num_person == 1
    assert resolve_layout(dict(backbone.graph_cfg.layout)) == resolve_layout(
        UTD_MHAD_LAYOUT)


def test_cocodiff_configs_keep_the_default_noise_level_with_t10():
    # The paper's T=10 for HD-GCN; start step 4 has the noise level of the
    # default chain's step 10 of 30.
    from mmengine.config import Config
    default = Config.fromfile(str(REPO / 'configs/_base_/cocodiff.py'))
    reference = MODELS.build(default.cocodiff_head.diffusion)
    start = default.cocodiff_head.generation.start_step
    for name in ('hdgcn_cocodiff_ntu60_xsub.py',
                 'hdgcn_cocodiff_utd_mhad.py'):
        head = Config.fromfile(str(REPO / 'configs' / name)).model.cls_head
        assert head.diffusion.num_steps == 10
        ours = MODELS.build(head.diffusion)
        step = head.generation.start_step
        assert step == 4
        # The closest noise level of the 10-step chain to the default's.
        gaps = (ours.alphas_cumprod - reference.alphas_cumprod[start]).abs()
        assert int(gaps.argmin()) == step
        assert float(gaps[step]) < 0.005
