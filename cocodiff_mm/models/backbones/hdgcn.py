"""HD-GCN: hierarchically decomposed graph convolution.

Written from Lee et al., "Hierarchically Decomposed Graph Convolutional
Networks for Skeleton-Based Action Recognition", ICCV 2023, with the input
and output contract of mmaction2's ``STGCN``: input ``(N, M, T, V, C)``,
output ``(N, M, C', T', V)``, so ``RecognizerGCN``, ``GCNHead`` and
``DiffusionAugmentedHead`` use it unchanged.

The paper decomposes the skeleton into joint sets by their distance from a
centre of mass and writes the sets out for NTU RGB+D only. Here they are
derived from any layout's edges (:func:`.skeleton_graph.hierarchy_levels`):
set ``k`` holds the joints ``k`` hops from the centre joint, and each pair of
consecutive sets gives one level of the hierarchical graph.
"""
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmaction.registry import MODELS

from ...utils.checks import check_int
from ...utils.config_keys import ConfigError
from .ctrgcn import GraphTemporalBlock, SkeletonGCNBackbone, _init_bn
from .skeleton_graph import (build_data_bn, check_graph_cfg,
                             hierarchical_adjacency, hierarchy_levels,
                             resolve_layout)


class EdgeConv(nn.Module):
    """Dynamic graph convolution over the k nearest points in feature space.

    Each point ``i`` gathers the edge features ``[x_j - x_i, x_i]`` of its
    ``k`` nearest points ``j`` (itself included), maps them with a 1x1
    convolution and keeps the channel-wise maximum (DGCNN's EdgeConv).

    Args:
        channels (int): Input and output channels.
        k (int): Neighbours per point, at most the number of points.
    """

    def __init__(self, channels: int, k: int) -> None:
        super().__init__()
        self.k = k
        self.conv = nn.Conv2d(2 * channels, channels, 1, bias=False)
        self.bn = nn.BatchNorm2d(channels)
        self.act = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, P) -> (N, C, P)."""
        points = x.transpose(1, 2)  # N, P, C
        with torch.no_grad():  # neighbour indices carry no gradient
            index = torch.cdist(points, points).topk(
                self.k, dim=-1, largest=False).indices  # N, P, k
        batch = torch.arange(points.size(0), device=x.device)[:, None, None]
        neighbours = points[batch, index]  # N, P, k, C
        centres = points.unsqueeze(2).expand_as(neighbours)
        edges = torch.cat((neighbours - centres, centres), dim=-1)
        edges = self.act(self.bn(self.conv(edges.permute(0, 3, 1, 2))))
        return edges.max(dim=-1).values


class HierarchyAttention(nn.Module):
    """Attention-guided hierarchy aggregation (the paper's AHA).

    Each level is summarised by its features, max-pooled over time and
    averaged over the joints of its two joint sets; an EdgeConv relates the
    level summaries, and a sigmoid gate per level and channel weighs the
    levels in their sum.

    Args:
        channels (int): Channels of the level features.
        level_joints (Sequence[Sequence[int]]): Joints of each level.
        num_joints (int): Joints V.
        k (int): EdgeConv neighbours among the levels (capped at their
            number). Defaults to 3.
    """

    def __init__(self,
                 channels: int,
                 level_joints: Sequence[Sequence[int]],
                 num_joints: int,
                 k: int = 3) -> None:
        super().__init__()
        inter_channels = channels // 4
        self.reduce = nn.Sequential(
            nn.Conv2d(channels, inter_channels, 1),
            nn.BatchNorm2d(inter_channels), nn.ReLU(inplace=True))
        self.edge_conv = EdgeConv(inter_channels, min(k, len(level_joints)))
        self.expand = nn.Conv1d(inter_channels, channels, 1)
        pool = torch.zeros(len(level_joints), num_joints)
        for level, joints in enumerate(level_joints):
            pool[level, list(joints)] = 1.0 / len(joints)
        # Derived from the layout: not part of a checkpoint.
        self.register_buffer('level_pool', pool, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, L, T, V) -> (N, C, T, V): levels summed with their gates."""
        summary = self.reduce(x.amax(dim=3))  # N, C', L, V
        summary = torch.einsum('nclv,lv->ncl', summary, self.level_pool)
        gate = torch.sigmoid(self.expand(self.edge_conv(summary)))
        return (x * gate[..., None, None]).sum(dim=2)


class HDGraphConv(nn.Module):
    """HD-GConv: per level, graph convolutions on its 3 subsets + EdgeConv.

    Per level, a 1x1 reduction to ``out_channels / 4`` channels feeds one
    aggregation per adjacency subset (identity, centrifugal, centripetal,
    each with its own 1x1 conv + BN) and an EdgeConv over the joints'
    time-averaged features; their concatenation is the level's output. The
    levels are summed, or weighed by :class:`HierarchyAttention`.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels, divisible by subsets + 1.
        adjacency (Tensor): ``(L, S, V, V)`` hierarchical adjacency.
        level_joints (Sequence[Sequence[int]]): Joints of each level.
        attention (bool): Weigh the levels with attention instead of summing
            them. Defaults to True.
        adaptive (bool): Learn the adjacency. Defaults to True.
        edge_k (int): EdgeConv neighbours among the joints. Defaults to 5.
        level_k (int): Attention EdgeConv neighbours among the levels.
            Defaults to 3.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 adjacency: torch.Tensor,
                 level_joints: Sequence[Sequence[int]],
                 attention: bool = True,
                 adaptive: bool = True,
                 edge_k: int = 5,
                 level_k: int = 3) -> None:
        super().__init__()
        num_levels, num_subsets, num_joints = adjacency.shape[:3]
        if out_channels % (num_subsets + 1):
            raise ConfigError(
                f'model.backbone: {out_channels} channels cannot be split '
                f'over the {num_subsets} adjacency subsets and the EdgeConv')
        inter_channels = out_channels // (num_subsets + 1)
        self.reduce = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(in_channels, inter_channels, 1),
                nn.BatchNorm2d(inter_channels), nn.ReLU(inplace=True))
            for _ in range(num_levels))
        self.subset_convs = nn.ModuleList(
            nn.ModuleList(
                nn.Sequential(
                    nn.Conv2d(inter_channels, inter_channels, 1),
                    nn.BatchNorm2d(inter_channels))
                for _ in range(num_subsets)) for _ in range(num_levels))
        self.edge_convs = nn.ModuleList(
            EdgeConv(inter_channels, min(edge_k, num_joints))
            for _ in range(num_levels))
        if adaptive:
            self.adjacency = nn.Parameter(adjacency.clone())
        else:
            self.register_buffer('adjacency', adjacency.clone())
        self.attention = (HierarchyAttention(out_channels, level_joints,
                                             num_joints, level_k)
                          if attention else None)
        if in_channels != out_channels:
            self.down = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1),
                nn.BatchNorm2d(out_channels))
        else:
            self.down = nn.Identity()
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, T, V) -> (N, C_out, T, V)."""
        levels = []
        for level, reduce in enumerate(self.reduce):
            z = reduce(x)
            parts = [
                conv(torch.einsum('nctu,vu->nctv', z,
                                  self.adjacency[level, subset]))
                for subset, conv in enumerate(self.subset_convs[level])
            ]
            edge = self.edge_convs[level](z.mean(dim=2))  # N, C', V
            parts.append(edge.unsqueeze(2).expand_as(parts[0]))
            levels.append(torch.cat(parts, dim=1))
        out = torch.stack(levels, dim=2)  # N, C, L, T, V
        out = out.sum(dim=2) if self.attention is None else self.attention(
            out)
        return self.relu(self.bn(out) + self.down(x))


class HDGCNBlock(GraphTemporalBlock):
    """One HD-GCN block: HD-GConv, multi-scale TCN, residual, ReLU.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        adjacency (Tensor): ``(L, S, V, V)`` hierarchical adjacency.
        level_joints (Sequence[Sequence[int]]): Joints of each level.
        stride (int): Temporal stride. Defaults to 1.
        residual (bool): Whether the block has a residual path.
            Defaults to True.
        attention (bool): Attention over the levels. Defaults to True.
        adaptive (bool): Learn the adjacency. Defaults to True.
        edge_k (int): EdgeConv neighbours among the joints. Defaults to 5.
        level_k (int): EdgeConv neighbours among the levels. Defaults to 3.
        kernel_size (int): Temporal kernel size. Defaults to 5.
        dilations (Sequence[int]): TCN dilations. Defaults to ``(1, 2)``.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 adjacency: torch.Tensor,
                 level_joints: Sequence[Sequence[int]],
                 stride: int = 1,
                 residual: bool = True,
                 attention: bool = True,
                 adaptive: bool = True,
                 edge_k: int = 5,
                 level_k: int = 3,
                 kernel_size: int = 5,
                 dilations: Sequence[int] = (1, 2)) -> None:
        super().__init__(
            HDGraphConv(in_channels, out_channels, adjacency, level_joints,
                        attention, adaptive, edge_k, level_k),
            in_channels, out_channels, stride, residual, kernel_size,
            dilations)


@MODELS.register_module()
class HDGCN(SkeletonGCNBackbone):
    """HD-GCN backbone (Lee et al., ICCV 2023).

    Ten blocks with 64-64-64-64-128-128-128-256-256-256 channels (for
    ``base_channels=64``) and temporal stride 2 at blocks 5 and 8, as
    CTR-GCN. Every block but the first weighs its hierarchy levels with
    attention; the first sums them, as in the paper's model. About 1.66 M
    parameters with a 60-class ``GCNHead`` on NTU RGB+D, as in the paper.

    Args:
        graph_cfg (dict): ``dict(layout=...)``: a layout name of mmaction2's
            ``Graph`` (``'nturgb+d'``, ``'openpose'``, ``'coco'``) or a layout
            dict such as ``cocodiff_mm.datasets.layouts.UTD_MHAD_LAYOUT``.
        in_channels (int): Channels of the input coordinates.
            Defaults to 3.
        base_channels (int): Channels of the first blocks. Defaults to 64.
        num_person (int): Persons per sample, used by the ``'MVC'`` data BN.
            Defaults to 2.
        data_bn_type (str): ``'MVC'``, ``'VC'`` or ``'none'`` (see
            :func:`.skeleton_graph.build_data_bn`). Defaults to ``'MVC'``.
        center (int, optional): The joint the hierarchy is built around
            (the paper's centre of mass), 0-based. ``None`` takes the
            layout's centre: 20 for ``'nturgb+d'`` (spine-shoulder, the
            paper's default CoM 21), 1 for ``'openpose'`` (neck), 2 for
            UTD-MHAD (spine). Defaults to ``None``.
        num_stages (int): Number of blocks. Defaults to 10.
        inflate_stages (Sequence[int]): 1-based blocks that double the
            channels. Defaults to ``(5, 8)``.
        down_stages (Sequence[int]): 1-based blocks with temporal stride 2.
            Defaults to ``(5, 8)``.
        adaptive (bool): Learn the adjacencies. Defaults to True.
        edge_k (int): EdgeConv neighbours among the joints. Defaults to 5.
        level_k (int): EdgeConv neighbours among the levels in the
            attention. Defaults to 3.
        tcn_kernel_size (int): Temporal kernel size. Defaults to 5.
        tcn_dilations (Sequence[int]): TCN dilations. Defaults to ``(1, 2)``.
        init_cfg (dict | list[dict], optional): mmengine initialisation
            applied by :meth:`init_weights` on top of the paper's (see
            :class:`~.ctrgcn.CTRGCN`). Defaults to ``None``.
    """

    def __init__(self,
                 graph_cfg: Dict,
                 in_channels: int = 3,
                 base_channels: int = 64,
                 num_person: int = 2,
                 data_bn_type: str = 'MVC',
                 center: Optional[int] = None,
                 num_stages: int = 10,
                 inflate_stages: Sequence[int] = (5, 8),
                 down_stages: Sequence[int] = (5, 8),
                 adaptive: bool = True,
                 edge_k: int = 5,
                 level_k: int = 3,
                 tcn_kernel_size: int = 5,
                 tcn_dilations: Sequence[int] = (1, 2),
                 init_cfg: Optional[Union[Dict, List[Dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        for name, value in (('in_channels', in_channels),
                            ('base_channels', base_channels),
                            ('num_person', num_person)):
            check_int(value, f'model.backbone.{name}', 1)
        num_joints, edges, layout_center = resolve_layout(
            check_graph_cfg(graph_cfg))
        if center is None:
            center = layout_center
        check_int(center, 'model.backbone.center', 0, num_joints - 1)
        check_int(edge_k, 'model.backbone.edge_k', 1)
        check_int(level_k, 'model.backbone.level_k', 1)
        self.center = center
        self.levels = hierarchy_levels(num_joints, edges, center)
        if len(self.levels) < 2:
            raise ConfigError('model.backbone: a hierarchy needs a skeleton '
                              'with at least two joints')
        self.hierarchy = torch.from_numpy(
            hierarchical_adjacency(self.levels, num_joints))
        level_joints = [
            inner + outer
            for inner, outer in zip(self.levels[:-1], self.levels[1:])
        ]
        self.in_channels = in_channels
        self.num_person = num_person
        self.data_bn_type = data_bn_type
        self.data_bn = build_data_bn(data_bn_type, in_channels, num_joints,
                                     num_person)

        blocks = []
        channels = in_channels
        out_channels = base_channels
        for index in range(1, num_stages + 1):
            if index in inflate_stages:
                out_channels *= 2
            blocks.append(
                HDGCNBlock(
                    channels,
                    out_channels,
                    self.hierarchy,
                    level_joints,
                    stride=2 if index in down_stages else 1,
                    residual=index > 1,
                    attention=index > 1,
                    adaptive=adaptive,
                    edge_k=edge_k,
                    level_k=level_k,
                    kernel_size=tcn_kernel_size,
                    dilations=tcn_dilations))
            channels = out_channels
        self.out_channels = channels
        self.gcn = nn.ModuleList(blocks)

    def init_graph_convs(self) -> None:
        """Start each spatial unit close to its residual path, with the
        hierarchical adjacency."""
        for module in self.modules():
            if isinstance(module, HDGraphConv):
                _init_bn(module.bn, 1e-6)
                if isinstance(module.adjacency, nn.Parameter):
                    with torch.no_grad():
                        module.adjacency.copy_(self.hierarchy)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Extract features.

        Args:
            x (Tensor): Skeletons of shape (N, M, T, V, C).

        Returns:
            Tensor: Features of shape (N, M, C_out, T', V).
        """
        N, M = x.shape[:2]
        self.check_input_channels(x)
        x = self.normalize_input(x)
        for block in self.gcn:
            x = block(x)
        return x.reshape((N, M) + x.shape[1:])


__all__ = ['HDGCN', 'HDGCNBlock', 'HDGraphConv', 'HierarchyAttention',
           'EdgeConv']
