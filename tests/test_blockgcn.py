"""Tests of the BlockGCN backbone (``cocodiff_mm.models.backbones.blockgcn``)
and the hop distances it encodes (``skeleton_graph.hop_distances``)."""
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import build_gcn_recognizer, parameters_without_gradient
import torch.nn as nn
from scipy.sparse.csgraph import minimum_spanning_tree

import cocodiff_mm  # noqa: F401,I001  (runtime fixes before mmaction2)
from mmaction.registry import MODELS
from mmaction.structures import ActionDataSample
from mmengine.optim import OptimWrapper
from mmengine.registry import init_default_scope

from cocodiff_mm.datasets.layouts import UTD_MHAD_LAYOUT
from cocodiff_mm.models.backbones.blockgcn import (BlockGCN, BlockGraphConv,
                                                   PersistenceEncoding,
                                                   mst_edge_weights)
from cocodiff_mm.models.backbones.ctrgcn import count_parameters
from cocodiff_mm.models.backbones.skeleton_graph import (hop_distances,
                                                         resolve_layout)

#: Trainable parameters of BlockGCN(nturgb+d) + GCNHead(60 classes, 15,420
#: of them), pinned as a regression check; the paper reports 1.3 M.
NTU60_PARAMETERS = 1_311_884
PUBLISHED_PARAMETERS = 1.3e6

NTU_GRAPH = dict(layout='nturgb+d')
INF = float('inf')

REPO = Path(__file__).resolve().parents[1]

init_default_scope('mmaction')



def build_recognizer(graph_cfg: dict = None, num_classes: int = 60,
                     **backbone) -> nn.Module:
    """RecognizerGCN with a BlockGCN backbone and a GCNHead."""
    backbone = dict(type='BlockGCN', graph_cfg=graph_cfg or NTU_GRAPH,
                    **backbone)
    return build_gcn_recognizer(
        backbone, backbone.get('base_channels', 128) * 2, num_classes)


def test_registered_in_mmaction_models():
    assert MODELS.get('BlockGCN') is BlockGCN


def test_parameter_count_matches_paper():
    model = build_recognizer()
    count = count_parameters(model)
    assert count == NTU60_PARAMETERS
    assert abs(count - PUBLISHED_PARAMETERS) / PUBLISHED_PARAMETERS < 0.03
    assert count == sum(p.numel() for p in model.parameters())
    # The persistence encoding is the optional part.
    without = count_parameters(build_recognizer(topology_encoding=False))
    assert without == 1_243_884


# Hop distances (the static topological encoding), by hand.


def test_hop_distances_by_hand():
    # Chain 0-1-2-3 with a branch 1-4, and joint 5 on its own.
    edges = [(0, 1), (2, 1), (3, 2), (4, 1)]
    expected = np.array([
        [0, 1, 2, 3, 2, -1],
        [1, 0, 1, 2, 1, -1],
        [2, 1, 0, 1, 2, -1],
        [3, 2, 1, 0, 3, -1],
        [2, 1, 2, 3, 0, -1],
        [-1, -1, -1, -1, -1, 0],
    ])
    hops = hop_distances(6, edges)
    assert hops.dtype == np.int64
    np.testing.assert_array_equal(hops, expected)


def test_ntu_hop_distances():
    num_node, edges, _ = resolve_layout('nturgb+d')
    hops = hop_distances(num_node, edges)
    assert (hops == hops.T).all() and (np.diag(hops) == 0).all()
    # Direct bones are 1 hop; left hand tip (22) to right foot (20) is the
    # longest path: 22-8-7-6-5-21-2-1-17-18-19-20 (1-based).
    for i, j in edges:
        assert hops[i, j] == 1
    assert hops[21, 19] == 11 and hops.max() == 11


def test_hop_bias_enters_each_column_by_hop_distance():
    # Chain 0-1-2: hops [[0, 1, 2], [1, 0, 1], [2, 1, 0]].
    hops = torch.from_numpy(hop_distances(3, [(0, 1), (2, 1)]))
    conv = BlockGraphConv(2, 2, hops, num_heads=1, num_subsets=1)
    # At initialisation: the identity (unit columns) and no hop bias.
    assert torch.allclose(conv.topologies(), torch.eye(3) / (1 + 1e-4))
    with torch.no_grad():
        conv.topology.zero_()
        conv.hop_bias.copy_(torch.tensor([[[0.0, 3.0, 4.0]]]))
    # Column v holds the bias of hop(u, v), scaled to unit norm:
    # column 0 is [0, 3, 4] / 5, column 1 [3, 0, 3] / sqrt(18).
    expected = torch.tensor([[0.0, 3.0, 4.0], [3.0, 0.0, 3.0],
                             [4.0, 3.0, 0.0]])
    expected = expected / expected.norm(dim=0, keepdim=True)
    assert torch.allclose(conv.topologies()[0, 0], expected, atol=1e-4)


def test_block_graph_conv_aggregates_each_group_with_its_own_topology():
    torch.manual_seed(0)
    hops = torch.from_numpy(hop_distances(3, [(0, 1), (2, 1)]))
    conv = BlockGraphConv(4, 4, hops, num_heads=2, num_subsets=1).eval()
    with torch.no_grad():
        conv.topology.copy_(torch.randn_like(conv.topology))
        conv.hop_bias.copy_(torch.randn_like(conv.hop_bias))
    x = torch.randn(2, 4, 5, 3)
    topology = conv.topologies()[0]  # H, V, V
    grouped = conv.convs[0]
    manual = torch.cat([
        torch.einsum('nctu,uv->nctv', x[:, 2 * h:2 * h + 2], topology[h])
        for h in range(2)
    ], dim=1)
    expected = conv.relu(conv.bn(grouped(manual)) + x)
    with torch.no_grad():
        assert torch.allclose(conv(x), expected, atol=1e-5)
    # The 1x1 convolution is grouped: 4 * 4 / 2 weights.
    assert grouped.weight.shape == (4, 2, 1, 1)


# Degree-0 persistence = minimum spanning tree weights, by hand.


def test_mst_weights_of_a_small_weighted_graph_by_hand():
    # Edges 0-1: 1, 1-2: 2, 0-2: 3, 2-3: 4, 1-3: 5, no edge 0-3. The MST
    # takes 1 and 2, skips 3 (a cycle), takes 4.
    w = torch.tensor([[0.0, 1.0, 3.0, INF], [1.0, 0.0, 2.0, 5.0],
                      [3.0, 2.0, 0.0, 4.0], [INF, 5.0, 4.0, 0.0]])
    assert torch.equal(mst_edge_weights(w[None]), torch.tensor([[1.0, 2.0,
                                                                4.0]]))


def test_mst_weights_of_points_on_a_line_are_the_gaps():
    # Rips filtration of 0, 1, 3, 7: components merge at the gaps 1, 2, 4.
    points = torch.tensor([0.0, 7.0, 1.0, 3.0]).view(1, 4, 1)
    weights = mst_edge_weights(torch.cdist(points, points))
    assert torch.allclose(weights, torch.tensor([[1.0, 2.0, 4.0]]))


def test_mst_weights_of_a_disconnected_graph():
    w = torch.full((4, 4), INF)
    w.fill_diagonal_(0)
    w[0, 1] = w[1, 0] = 1.0
    w[2, 3] = w[3, 2] = 2.0
    assert torch.equal(mst_edge_weights(w[None]),
                       torch.tensor([[1.0, 2.0, INF]]))


def test_mst_weights_match_scipy():
    generator = torch.Generator().manual_seed(0)
    points = torch.rand(5, 11, 3, generator=generator)
    distances = torch.cdist(points, points).double()
    ours = mst_edge_weights(distances)
    for sample, weights in zip(distances, ours):
        reference = np.sort(minimum_spanning_tree(sample.numpy()).data)
        np.testing.assert_allclose(weights.numpy(), reference, rtol=1e-12)


def test_persistence_encoding_invariances():
    torch.manual_seed(0)
    encoding = PersistenceEncoding(num_joints=6, channels=8)
    x = torch.randn(3, 4, 6, 3)  # B, T, V, C
    reference = encoding(x)
    assert reference.shape == (3, 8)
    # Body size, position and joint order do not change it.
    moved = 2.5 * x + torch.tensor([1.0, -2.0, 0.5])
    assert torch.allclose(encoding(moved), reference, atol=1e-5)
    permuted = x[:, :, torch.randperm(6)]
    assert torch.allclose(encoding(permuted), reference, atol=1e-5)
    # An all-zero (padded) skeleton gives zero deaths, not NaN.
    assert torch.isfinite(encoding(torch.zeros(1, 4, 6, 3))).all()


# Contract with RecognizerGCN / GCNHead.


@pytest.mark.parametrize('graph_cfg, num_joints, num_person', [
    (dict(layout='nturgb+d'), 25, 2),
    (dict(layout='openpose'), 18, 2),
    (dict(layout=UTD_MHAD_LAYOUT), 20, 1),
],
                         ids=['nturgb+d', 'openpose', 'utd_mhad'])
def test_output_shape(graph_cfg, num_joints, num_person):
    torch.manual_seed(0)
    backbone = BlockGCN(graph_cfg=graph_cfg, num_person=num_person)
    backbone.init_weights()
    backbone.eval()
    x = torch.randn(2, num_person, 16, num_joints, 3)
    with torch.no_grad():
        out = backbone(x)
    assert out.shape == (2, num_person, 256, 4, num_joints)
    assert backbone.out_channels == 256
    assert torch.isfinite(out).all()
    expected_hops = hop_distances(*resolve_layout(graph_cfg['layout'])[:2])
    assert torch.equal(backbone.gcn[0].gcn.hops,
                       torch.from_numpy(expected_hops))


def test_without_topology_encoding():
    backbone = BlockGCN(graph_cfg=NTU_GRAPH, base_channels=16,
                        topology_encoding=False).eval()
    assert backbone.persistence is None
    assert all(block.topology is None for block in backbone.gcn)
    with torch.no_grad():
        out = backbone(torch.randn(1, 2, 8, 25, 3))
    assert out.shape == (1, 2, 32, 2, 25)


@pytest.mark.parametrize('kwargs, message', [
    (dict(graph_cfg=dict(layout='kinect')),
     r"layout: unknown skeleton layout 'kinect'"),
    (dict(graph_cfg=NTU_GRAPH, num_heads=3),
     r'num_heads=3 must divide the block channels \(128 -> 128\)'),
    (dict(graph_cfg=NTU_GRAPH, data_bn_type='MV'),
     r"data_bn_type must be one of \('MVC', 'VC', 'none'\)"),
])
def test_bad_options_refused_in_one_line(kwargs, message):
    with pytest.raises(ValueError, match=message) as error:
        BlockGCN(**kwargs)
    assert '\n' not in str(error.value)


def test_init_weights_is_recallable_and_resets():
    backbone = BlockGCN(graph_cfg=NTU_GRAPH, base_channels=16, num_stages=3)
    torch.manual_seed(0)
    backbone.init_weights()
    initial = {k: v.clone() for k, v in backbone.named_parameters()}
    for unit in backbone.modules():
        if isinstance(unit, BlockGraphConv):
            eye = torch.eye(25).expand_as(unit.topology)
            assert torch.equal(unit.topology, eye)
            assert torch.all(unit.hop_bias == 0)
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
    topology = model.backbone.gcn[1].gcn.topology.detach().clone()
    log_vars = model.train_step(data, optim_wrapper)
    assert set(log_vars) >= {'loss', 'loss_cls'}
    assert math.isfinite(float(log_vars['loss'].detach()))
    # The per-group topologies are trained.
    assert not torch.equal(model.backbone.gcn[1].gcn.topology, topology)
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
    cfg = Config.fromfile(str(REPO / 'configs/blockgcn_utd_mhad.py'))
    backbone = cfg.model.backbone
    assert backbone.type == 'BlockGCN' and backbone.num_person == 1
    assert resolve_layout(dict(backbone.graph_cfg.layout)) == resolve_layout(
        UTD_MHAD_LAYOUT)
