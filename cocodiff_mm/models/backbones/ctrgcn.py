"""CTR-GCN: channel-wise topology refinement graph convolution.

Written from Chen et al., "Channel-wise Topology Refinement Graph Convolution
for Skeleton-Based Action Recognition", ICCV 2021. mmaction2 1.2.0 does not
install a CTR-GCN (it lives only in the upstream repository's ``projects/``),
so we provide one with the input/output contract of mmaction2's ``STGCN``:
input ``(N, M, T, V, C)``, output ``(N, M, C', T', V)``, so that
``RecognizerGCN`` and ``GCNHead`` use it unchanged.
"""
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmaction.models.utils import Graph, unit_tcn
from mmaction.registry import MODELS
from mmengine.model import BaseModule

from ...utils.checks import check_int
from .skeleton_graph import build_data_bn, normalize_skeletons


def _init_conv(conv: nn.Conv2d) -> None:
    """Kaiming-normal (fan-out) weights and zero bias, as in the paper's code."""
    nn.init.kaiming_normal_(conv.weight, mode='fan_out')
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


def _init_bn(bn: nn.BatchNorm2d, scale: float = 1.0) -> None:
    """Constant BN scale and zero shift."""
    nn.init.constant_(bn.weight, scale)
    nn.init.zeros_(bn.bias)


class TopologyRefinement(nn.Module):
    """Channel-wise topology refinement graph convolution (CTR-GC).

    Models a shared topology ``A`` plus channel-specific correlations: two
    1x1 projections, pooled over time, give pairwise joint relations per
    (reduced) channel that a third 1x1 conv expands to every output channel.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        rel_reduction (int): Reduction ratio of the relation channels.
            Defaults to 8.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 rel_reduction: int = 8) -> None:
        super().__init__()
        # Raw coordinates (3 or 9 channels) are too few to reduce.
        rel_channels = 8 if in_channels <= 16 else in_channels // rel_reduction
        self.query = nn.Conv2d(in_channels, rel_channels, 1)
        self.key = nn.Conv2d(in_channels, rel_channels, 1)
        self.value = nn.Conv2d(in_channels, out_channels, 1)
        self.expand = nn.Conv2d(rel_channels, out_channels, 1)
        self.tanh = nn.Tanh()

    def forward(self, x: torch.Tensor, adjacency: torch.Tensor,
                alpha: torch.Tensor) -> torch.Tensor:
        """Refine ``adjacency`` per channel and aggregate ``x`` with it.

        Args:
            x (Tensor): Features of shape (N, C, T, V).
            adjacency (Tensor): Shared topology of shape (V, V).
            alpha (Tensor): Scale of the channel-specific refinement.

        Returns:
            Tensor: Features of shape (N, C_out, T, V).
        """
        query = self.query(x).mean(-2)
        key = self.key(x).mean(-2)
        relation = self.tanh(query.unsqueeze(-1) - key.unsqueeze(-2))
        topology = self.expand(relation) * alpha + adjacency[None, None]
        return torch.einsum('ncuv,nctv->nctu', topology, self.value(x))


class CTRGraphConv(nn.Module):
    """Spatial unit: one CTR-GC per adjacency subset, summed, BN, residual.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        adjacency (Tensor): Adjacency subsets of shape (K, V, V).
        adaptive (bool): Whether the shared topology is learned.
            Defaults to True.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 adjacency: torch.Tensor,
                 adaptive: bool = True) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            TopologyRefinement(in_channels, out_channels)
            for _ in range(adjacency.size(0)))
        if adaptive:
            self.adjacency = nn.Parameter(adjacency.clone())
        else:
            self.register_buffer('adjacency', adjacency.clone())
        self.alpha = nn.Parameter(torch.zeros(1))
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
        out = sum(
            conv(x, self.adjacency[i], self.alpha)
            for i, conv in enumerate(self.convs))
        return self.relu(self.bn(out) + self.down(x))


class MultiScaleTemporalConv(nn.Module):
    """Multi-scale TCN: dilated branches, a max-pool branch and a 1x1 branch.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels, split evenly over the branches.
        kernel_size (int): Temporal kernel of the dilated branches.
            Defaults to 5.
        stride (int): Temporal stride. Defaults to 1.
        dilations (Sequence[int]): One dilated branch per value.
            Defaults to ``(1, 2)``.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: int = 5,
                 stride: int = 1,
                 dilations: Sequence[int] = (1, 2)) -> None:
        super().__init__()
        num_branches = len(dilations) + 2
        if out_channels % num_branches:
            raise ValueError(f'out_channels={out_channels} must be divisible '
                             f'by the {num_branches} TCN branches')
        branch = out_channels // num_branches

        def reduce() -> list:
            return [
                nn.Conv2d(in_channels, branch, 1),
                nn.BatchNorm2d(branch),
                nn.ReLU(inplace=True)
            ]

        # mmaction2's unit_tcn is the dilated (k x 1) conv + BN; its own
        # init_cfg is switched off because CTRGCN.init_weights sets every
        # layer (the paper's initialisation).
        branches = [
            nn.Sequential(
                *reduce(),
                unit_tcn(branch, branch, kernel_size, stride=stride,
                         dilation=dilation, init_cfg=None))
            for dilation in dilations
        ]
        branches.append(
            nn.Sequential(*reduce(),
                          nn.MaxPool2d((3, 1),
                                       stride=(stride, 1),
                                       padding=(1, 0)),
                          nn.BatchNorm2d(branch)))
        branches.append(
            nn.Sequential(
                nn.Conv2d(in_channels, branch, 1, stride=(stride, 1)),
                nn.BatchNorm2d(branch)))
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, T, V) -> (N, C_out, T // stride, V)."""
        return torch.cat([branch(x) for branch in self.branches], dim=1)


class GraphTemporalBlock(nn.Module):
    """A spatial graph convolution, a multi-scale TCN, a residual and a ReLU:
    the block the GCN backbones of this package stack.

    Args:
        gcn (nn.Module): The spatial unit, (N, C_in, T, V) ->
            (N, C_out, T, V).
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        stride (int): Temporal stride. Defaults to 1.
        residual (bool): Whether the block has a residual path.
            Defaults to True.
        kernel_size (int): Temporal kernel size. Defaults to 5.
        dilations (Sequence[int]): TCN dilations. Defaults to ``(1, 2)``.
    """

    def __init__(self,
                 gcn: nn.Module,
                 in_channels: int,
                 out_channels: int,
                 stride: int = 1,
                 residual: bool = True,
                 kernel_size: int = 5,
                 dilations: Sequence[int] = (1, 2)) -> None:
        super().__init__()
        self.gcn = gcn
        self.tcn = MultiScaleTemporalConv(out_channels, out_channels,
                                          kernel_size, stride, dilations)
        self.relu = nn.ReLU(inplace=True)
        if not residual:
            self.residual = None
        elif in_channels == out_channels and stride == 1:
            self.residual = nn.Identity()
        else:
            self.residual = unit_tcn(in_channels, out_channels, 1,
                                     stride=stride, init_cfg=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, T, V) -> (N, C_out, T // stride, V)."""
        out = self.tcn(self.gcn(x))
        if self.residual is not None:
            out = out + self.residual(x)
        return self.relu(out)


class CTRGCNBlock(GraphTemporalBlock):
    """One CTR-GCN block: CTR graph conv, multi-scale TCN, residual, ReLU.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        adjacency (Tensor): Adjacency subsets of shape (K, V, V).
        stride (int): Temporal stride. Defaults to 1.
        residual (bool): Whether the block has a residual path.
            Defaults to True.
        adaptive (bool): Whether the shared topology is learned.
            Defaults to True.
        kernel_size (int): Temporal kernel size. Defaults to 5.
        dilations (Sequence[int]): TCN dilations. Defaults to ``(1, 2)``.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 adjacency: torch.Tensor,
                 stride: int = 1,
                 residual: bool = True,
                 adaptive: bool = True,
                 kernel_size: int = 5,
                 dilations: Sequence[int] = (1, 2)) -> None:
        super().__init__(
            CTRGraphConv(in_channels, out_channels, adjacency, adaptive),
            in_channels, out_channels, stride, residual, kernel_size,
            dilations)


class SkeletonGCNBackbone(BaseModule):
    """What the GCN backbones of this package share: the paper's
    initialisation (re-runnable), the input batch norm, the block stack.

    Subclasses build ``self.data_bn`` with :func:`build_data_bn` (keeping
    ``data_bn_type`` and ``num_person``), ``self.gcn`` (the blocks) and
    implement :meth:`init_graph_convs`.
    """

    #: Also re-initialise ``nn.Linear`` layers in :meth:`init_weights`.
    reset_linears = False

    def init_graph_convs(self) -> None:
        """Initialise what is particular to the backbone's spatial units
        (after the generic convolutions and batch norms)."""
        raise NotImplementedError

    def init_weights(self) -> None:
        """The paper's initialisation, then ``init_cfg`` when given.

        Safe to call again to re-initialise (the multi-stage loop does).
        """
        for module in self.modules():
            if isinstance(module, (nn.Conv1d, nn.Conv2d)):
                _init_conv(module)
            elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
                _init_bn(module)
            elif self.reset_linears and isinstance(module, nn.Linear):
                module.reset_parameters()
        self.init_graph_convs()
        for module in self.modules():
            if isinstance(module, MultiScaleTemporalConv):
                for bn in module.modules():
                    if isinstance(bn, nn.BatchNorm2d):
                        nn.init.normal_(bn.weight, 1.0, 0.02)
                        nn.init.zeros_(bn.bias)
        if self.init_cfg:
            # BaseModule.init_weights applies init_cfg (Pretrained last) but
            # runs only while _is_init is False; this method may run again.
            self._is_init = False
            super().init_weights()
        self._is_init = True

    def normalize_input(self, x: torch.Tensor) -> torch.Tensor:
        """The input batch norm: (N, M, T, V, C) -> (N*M, C, T, V)."""
        return normalize_skeletons(self.data_bn, self.data_bn_type,
                                   self.num_person, x, type(self).__name__)

    def check_input_channels(self, x: torch.Tensor) -> None:
        """Refuse inputs whose joints have another number of channels."""
        if x.size(-1) != self.in_channels:
            raise ValueError(f'{type(self).__name__} expects '
                             f'{self.in_channels} input channels per joint, '
                             f'got {x.size(-1)}')


@MODELS.register_module()
class CTRGCN(SkeletonGCNBackbone):
    """CTR-GCN backbone (Chen et al., ICCV 2021).

    Ten blocks with 64-64-64-64-128-128-128-256-256-256 channels (for
    ``base_channels=64``) and temporal stride 2 at blocks 5 and 8; about
    1.46 M parameters with a 60-class ``GCNHead``.

    Args:
        graph_cfg (dict): Config of mmaction2's ``Graph``; CTR-GCN uses the
            3-subset ``mode='spatial'`` adjacency.
        in_channels (int): Channels of the input coordinates.
            Defaults to 3.
        base_channels (int): Channels of the first blocks. Defaults to 64.
        num_person (int): Persons per sample, used by the ``'MVC'`` data BN.
            Defaults to 2.
        data_bn_type (str): ``'MVC'`` (per person, joint and coordinate, as
            in the paper), ``'VC'`` (shared over persons) or ``'none'``.
            Defaults to ``'MVC'``.
        num_stages (int): Number of blocks. Defaults to 10.
        inflate_stages (Sequence[int]): 1-based blocks that double the
            channels. Defaults to ``(5, 8)``.
        down_stages (Sequence[int]): 1-based blocks with temporal stride 2.
            Defaults to ``(5, 8)``.
        adaptive (bool): Learn the shared topology. Defaults to True.
        tcn_kernel_size (int): Temporal kernel size. Defaults to 5.
        tcn_dilations (Sequence[int]): TCN dilations. Defaults to ``(1, 2)``.
        init_cfg (dict | list[dict], optional): mmengine initialisation
            applied by :meth:`init_weights` on top of the paper's, e.g.
            ``dict(type='Pretrained', checkpoint='baseline.pth',
            prefix='backbone.')`` or ``dict(type='Kaiming', layer='Conv2d')``;
            layers it does not reach keep the paper's initialisation.
            ``None`` keeps the paper's initialisation alone. Defaults to
            ``None``.
    """

    def __init__(self,
                 graph_cfg: Dict,
                 in_channels: int = 3,
                 base_channels: int = 64,
                 num_person: int = 2,
                 data_bn_type: str = 'MVC',
                 num_stages: int = 10,
                 inflate_stages: Sequence[int] = (5, 8),
                 down_stages: Sequence[int] = (5, 8),
                 adaptive: bool = True,
                 tcn_kernel_size: int = 5,
                 tcn_dilations: Sequence[int] = (1, 2),
                 init_cfg: Optional[Union[Dict, List[Dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        for name, value in (('in_channels', in_channels),
                            ('base_channels', base_channels),
                            ('num_person', num_person)):
            check_int(value, f'model.backbone.{name}', 1)
        self.graph = Graph(**graph_cfg)
        adjacency = torch.tensor(self.graph.A, dtype=torch.float32)
        num_joints = adjacency.size(-1)
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
                CTRGCNBlock(
                    channels,
                    out_channels,
                    adjacency,
                    stride=2 if index in down_stages else 1,
                    residual=index > 1,
                    adaptive=adaptive,
                    kernel_size=tcn_kernel_size,
                    dilations=tcn_dilations))
            channels = out_channels
        self.out_channels = channels
        self.gcn = nn.ModuleList(blocks)

    def init_graph_convs(self) -> None:
        """Start each spatial unit close to its residual path, with the
        graph's adjacency."""
        for module in self.modules():
            if isinstance(module, CTRGraphConv):
                _init_bn(module.bn, 1e-6)
                nn.init.zeros_(module.alpha)
                if isinstance(module.adjacency, nn.Parameter):
                    with torch.no_grad():
                        module.adjacency.copy_(
                            torch.as_tensor(self.graph.A,
                                            dtype=module.adjacency.dtype))

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


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


__all__ = ['CTRGCN', 'CTRGCNBlock', 'GraphTemporalBlock', 'SkeletonGCNBackbone',
           'count_parameters']
