"""BlockGCN: block graph convolution with topological encodings.

Written from Zhou et al., "BlockGCN: Redefine Topology Awareness for
Skeleton-Based Action Recognition", CVPR 2024, with the input and output
contract of mmaction2's ``STGCN``: input ``(N, M, T, V, C)``, output
``(N, M, C', T', V)``, so ``RecognizerGCN``, ``GCNHead`` and
``DiffusionAugmentedHead`` use it unchanged.

The skeleton enters in two ways only: hop distances between joints, a
relative position encoding of the learned topologies (the static
encoding), and the degree-0 persistent homology of each sample's joints (the
dynamic encoding). Degree-0 persistence of a Vietoris-Rips filtration is the
sorted edge weights of a minimum spanning tree, computed here in torch
(:func:`mst_edge_weights`) instead of with a topology library.
"""
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmaction.registry import MODELS

from ...utils.checks import check_int
from ...utils.config_keys import ConfigError
from .ctrgcn import GraphTemporalBlock, SkeletonGCNBackbone, _init_bn
from .skeleton_graph import (build_data_bn, check_graph_cfg, hop_distances,
                             resolve_layout)


def mst_edge_weights(distances: torch.Tensor) -> torch.Tensor:
    """Sorted edge weights of a minimum spanning tree (Prim), batched.

    For the Vietoris-Rips (or any edge-weight) filtration of a graph these
    are the deaths of its degree-0 persistence pairs: every component is
    born at 0 and dies when an MST edge merges it into another.

    Args:
        distances (Tensor): ``(B, V, V)`` symmetric non-negative edge
            weights; ``inf`` marks a missing edge.

    Returns:
        Tensor: ``(B, V - 1)`` ascending weights; ``inf`` for each component
        that never merges (a disconnected graph).
    """
    batch, num_nodes = distances.shape[:2]
    rows = torch.arange(batch, device=distances.device)
    in_tree = torch.zeros(batch, num_nodes, dtype=torch.bool,
                          device=distances.device)
    in_tree[:, 0] = True
    reach = distances[:, 0]  # cheapest edge from the tree to each node
    weights = []
    for _ in range(num_nodes - 1):
        candidates = reach.masked_fill(in_tree, float('inf'))
        weight = candidates.min(dim=1).values
        # The first node outside the tree at that weight: with only inf
        # left, a new component starts there rather than at a tree node.
        node = ((candidates == weight[:, None]) & ~in_tree).int().argmax(1)
        weights.append(weight)
        in_tree[rows, node] = True
        reach = torch.minimum(reach, distances[rows, node])
    if not weights:
        return distances.new_zeros(batch, 0)
    return torch.stack(weights, dim=1).sort(dim=1).values


class PersistenceEncoding(nn.Module):
    """Degree-0 persistence of each skeleton's joints, as a vector.

    The joints' time-averaged positions form a point cloud; its pairwise
    distances, scaled by their maximum so the encoding ignores body size,
    give a Vietoris-Rips filtration whose ``V - 1`` finite deaths
    (:func:`mst_edge_weights`) a linear layer + ReLU embeds.

    Args:
        num_joints (int): Joints V.
        channels (int): Embedding channels. Defaults to 32.
    """

    def __init__(self, num_joints: int, channels: int = 32) -> None:
        super().__init__()
        self.embed = nn.Sequential(
            nn.Linear(num_joints - 1, channels), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, V, C) raw skeletons -> (B, channels)."""
        with torch.no_grad():  # a function of the input alone
            joints = x.mean(dim=1)
            distances = torch.cdist(joints, joints)
            scale = distances.amax(dim=(1, 2), keepdim=True).clamp_min(1e-6)
            deaths = mst_edge_weights(distances / scale)
        return self.embed(deaths)


def _unit_columns(weight: torch.Tensor) -> torch.Tensor:
    """Scale each column (the weights into one joint) to unit L2 norm."""
    return weight / (weight.norm(dim=-2, keepdim=True) + 1e-4)


class BlockGraphConv(nn.Module):
    """BlockGC: per channel group, its own topology, then a grouped 1x1 conv.

    The channels are split into ``num_heads`` groups; each group aggregates
    the joints with its own learned ``V x V`` topology (initialised to the
    identity) plus a learned bias per hop distance, and a grouped 1x1
    convolution projects each group separately. ``num_subsets`` such
    branches are summed. Topology and hop bias are column-normalised so they
    contribute on the same scale whatever their magnitude.

    Args:
        in_channels (int): Input channels, divisible by ``num_heads``.
        out_channels (int): Output channels, divisible by ``num_heads``.
        hops (Tensor): ``(V, V)`` int64 hop distances.
        num_heads (int): Channel groups. Defaults to 8.
        num_subsets (int): Summed branches. Defaults to 3.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 hops: torch.Tensor,
                 num_heads: int = 8,
                 num_subsets: int = 3) -> None:
        super().__init__()
        if in_channels % num_heads or out_channels % num_heads:
            raise ConfigError(
                f'model.backbone.num_heads={num_heads} must divide the '
                f'block channels ({in_channels} -> {out_channels})')
        num_joints = hops.size(0)
        self.num_heads = num_heads
        self.topology = nn.Parameter(
            torch.eye(num_joints).repeat(num_subsets, num_heads, 1, 1))
        self.hop_bias = nn.Parameter(
            torch.zeros(num_subsets, num_heads, int(hops.max()) + 1))
        # Derived from the layout: not part of a checkpoint.
        self.register_buffer('hops', hops.clone(), persistent=False)
        self.convs = nn.ModuleList(
            nn.Conv2d(in_channels, out_channels, 1, groups=num_heads)
            for _ in range(num_subsets))
        if in_channels != out_channels:
            self.down = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1),
                nn.BatchNorm2d(out_channels))
        else:
            self.down = nn.Identity()
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)

    def topologies(self) -> torch.Tensor:
        """The ``(S, H, V, V)`` aggregation matrices; ``[s, h, u, v]``
        weighs joint ``u``'s message to joint ``v``."""
        return (_unit_columns(self.topology) +
                _unit_columns(self.hop_bias[:, :, self.hops]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, T, V) -> (N, C_out, T, V)."""
        N, C, T, V = x.shape
        groups = x.view(N, self.num_heads, C // self.num_heads, T, V)
        topology = self.topologies()
        out = 0
        for subset, conv in enumerate(self.convs):
            z = torch.einsum('nhctu,huv->nhctv', groups, topology[subset])
            out = out + conv(z.reshape(N, C, T, V))
        return self.relu(self.bn(out) + self.down(x))


class BlockGCNBlock(GraphTemporalBlock):
    """One BlockGCN block: topology bias, BlockGC, multi-scale TCN, residual.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        hops (Tensor): ``(V, V)`` hop distances.
        stride (int): Temporal stride. Defaults to 1.
        num_heads (int): BlockGC channel groups. Defaults to 8.
        num_subsets (int): BlockGC branches. Defaults to 3.
        topology_channels (int, optional): Channels of the persistence
            encoding this block adds to its input (a linear layer, BN, ReLU
            map it to ``in_channels``); ``None`` for none. Defaults to
            ``None``.
        kernel_size (int): Temporal kernel size. Defaults to 5.
        dilations (Sequence[int]): TCN dilations. Defaults to ``(1, 2)``.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 hops: torch.Tensor,
                 stride: int = 1,
                 num_heads: int = 8,
                 num_subsets: int = 3,
                 topology_channels: Optional[int] = None,
                 kernel_size: int = 5,
                 dilations: Sequence[int] = (1, 2)) -> None:
        topology = None if topology_channels is None else nn.Sequential(
            nn.Linear(topology_channels, in_channels),
            nn.BatchNorm1d(in_channels), nn.ReLU(inplace=True))
        super().__init__(
            BlockGraphConv(in_channels, out_channels, hops, num_heads,
                           num_subsets),
            in_channels, out_channels, stride, True, kernel_size, dilations)
        self.topology = topology

    def forward(self,
                x: torch.Tensor,
                encoding: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(N, C, T, V) and encoding (N, C_topo) -> (N, C_out, T', V)."""
        if self.topology is not None:
            x = x + self.topology(encoding)[..., None, None]
        return super().forward(x)


@MODELS.register_module()
class BlockGCN(SkeletonGCNBackbone):
    """BlockGCN backbone (Zhou et al., CVPR 2024).

    A per-joint linear embedding plus a learned joint embedding lifts the
    coordinates to ``base_channels``; ten BlockGC blocks follow with
    128-128-128-128-256-256-256-256-256-256 channels (for
    ``base_channels=128``) and temporal stride 2 at blocks 5 and 8, each fed
    the persistence encoding. About 1.31 M parameters with a 60-class
    ``GCNHead`` on NTU RGB+D (the paper: 1.3 M; 1.24 M without the
    persistence encoding).

    Args:
        graph_cfg (dict): ``dict(layout=...)``: a layout name of mmaction2's
            ``Graph`` (``'nturgb+d'``, ``'openpose'``, ``'coco'``) or a layout
            dict such as ``cocodiff_mm.datasets.layouts.UTD_MHAD_LAYOUT``.
        in_channels (int): Channels of the input coordinates.
            Defaults to 3.
        base_channels (int): Embedding channels, those of the first blocks.
            Defaults to 128.
        num_person (int): Persons per sample, used by the ``'MVC'`` data BN.
            Defaults to 2.
        data_bn_type (str): ``'MVC'``, ``'VC'`` or ``'none'`` (see
            :func:`.skeleton_graph.build_data_bn`), on the embedded joints.
            Defaults to ``'MVC'``.
        num_stages (int): Number of blocks. Defaults to 10.
        inflate_stages (Sequence[int]): 1-based blocks that double the
            channels. Defaults to ``(5, )``.
        down_stages (Sequence[int]): 1-based blocks with temporal stride 2.
            Defaults to ``(5, 8)``.
        num_heads (int): BlockGC channel groups. Defaults to 8.
        num_subsets (int): BlockGC branches per block. Defaults to 3.
        topology_encoding (bool): Add the persistence encoding to each
            block's input. It costs ``V - 1`` small batched steps per forward
            and about 0.07 M parameters. Defaults to True (the paper's
            model).
        topology_channels (int): Channels of the persistence encoding. The
            authors' code embeds the diagram in 64, which gives 1.37 M
            parameters, above the published size. Defaults to 32.
        tcn_kernel_size (int): Temporal kernel size. Defaults to 5.
        tcn_dilations (Sequence[int]): TCN dilations. Defaults to ``(1, 2)``.
        init_cfg (dict | list[dict], optional): mmengine initialisation
            applied by :meth:`init_weights` on top of the paper's (see
            :class:`~.ctrgcn.CTRGCN`). Defaults to ``None``.
    """

    def __init__(self,
                 graph_cfg: Dict,
                 in_channels: int = 3,
                 base_channels: int = 128,
                 num_person: int = 2,
                 data_bn_type: str = 'MVC',
                 num_stages: int = 10,
                 inflate_stages: Sequence[int] = (5, ),
                 down_stages: Sequence[int] = (5, 8),
                 num_heads: int = 8,
                 num_subsets: int = 3,
                 topology_encoding: bool = True,
                 topology_channels: int = 32,
                 tcn_kernel_size: int = 5,
                 tcn_dilations: Sequence[int] = (1, 2),
                 init_cfg: Optional[Union[Dict, List[Dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        for name, value in (('in_channels', in_channels),
                            ('base_channels', base_channels),
                            ('num_person', num_person)):
            check_int(value, f'model.backbone.{name}', 1)
        num_joints, edges, _ = resolve_layout(check_graph_cfg(graph_cfg))
        check_int(num_heads, 'model.backbone.num_heads', 1)
        check_int(num_subsets, 'model.backbone.num_subsets', 1)
        check_int(topology_channels, 'model.backbone.topology_channels', 1)
        if num_joints < 2:
            raise ConfigError('model.backbone: BlockGCN needs a skeleton '
                              'with at least two joints')
        hops = torch.from_numpy(hop_distances(num_joints, edges))
        self.in_channels = in_channels
        self.embed = nn.Linear(in_channels, base_channels)
        self.joint_embedding = nn.Parameter(
            torch.randn(num_joints, base_channels))
        self.num_person = num_person
        self.data_bn_type = data_bn_type
        self.data_bn = build_data_bn(data_bn_type, base_channels, num_joints,
                                     num_person)
        self.persistence = (PersistenceEncoding(num_joints, topology_channels)
                            if topology_encoding else None)

        blocks = []
        channels = base_channels
        for index in range(1, num_stages + 1):
            out_channels = channels * (2 if index in inflate_stages else 1)
            blocks.append(
                BlockGCNBlock(
                    channels,
                    out_channels,
                    hops,
                    stride=2 if index in down_stages else 1,
                    num_heads=num_heads,
                    num_subsets=num_subsets,
                    topology_channels=(topology_channels
                                       if topology_encoding else None),
                    kernel_size=tcn_kernel_size,
                    dilations=tcn_dilations))
            channels = out_channels
        self.out_channels = channels
        self.gcn = nn.ModuleList(blocks)

    #: Linear layers get PyTorch's default, as in the paper's model.
    reset_linears = True

    def init_graph_convs(self) -> None:
        """Random joint embedding; each spatial unit starts close to its
        residual path, each group's topology at the identity, no hop bias."""
        nn.init.normal_(self.joint_embedding)
        for module in self.modules():
            if isinstance(module, BlockGraphConv):
                _init_bn(module.bn, 1e-6)
                with torch.no_grad():
                    module.topology.copy_(
                        torch.eye(module.topology.size(-1)).expand_as(
                            module.topology))
                nn.init.zeros_(module.hop_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Extract features.

        Args:
            x (Tensor): Skeletons of shape (N, M, T, V, C).

        Returns:
            Tensor: Features of shape (N, M, C_out, T', V).
        """
        N, M, T, V, C = x.shape
        self.check_input_channels(x)
        encoding = (None if self.persistence is None else
                    self.persistence(x.reshape(N * M, T, V, C)))
        x = self.normalize_input(self.embed(x) + self.joint_embedding)
        for block in self.gcn:
            x = block(x, encoding)
        return x.reshape((N, M) + x.shape[1:])


__all__ = ['BlockGCN', 'BlockGCNBlock', 'BlockGraphConv',
           'PersistenceEncoding', 'mst_edge_weights']
