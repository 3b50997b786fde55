"""Skeleton graph helpers shared by the HD-GCN and BlockGCN backbones.

Both take ``graph_cfg=dict(layout=...)`` with a layout name that mmaction2's
:class:`~mmaction.models.utils.Graph` knows or a layout dict
(``dict(num_node=..., inward=[(i, j), ...], center=...)``, as in
:mod:`cocodiff_mm.datasets.layouts`), and derive what they need from its
edges: hop distances (BlockGCN) and the hierarchy of joint sets around a
centre joint (HD-GCN).
"""
from collections import deque
from typing import Dict, List, Mapping, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
from mmaction.models.utils import Graph
from mmaction.models.utils.graph import edge2mat, normalize_digraph

from ...utils.checks import check_choice, check_int
from ...utils.config_keys import ConfigError, refuse_unknown_keys

#: Layout names mmaction2's ``Graph`` defines.
NAMED_LAYOUTS: Tuple[str, ...] = ('nturgb+d', 'openpose', 'coco')

Edge = Tuple[int, int]


def resolve_layout(
    layout: Union[str, Mapping],
    key: str = 'model.backbone.graph_cfg.layout'
) -> Tuple[int, List[Edge], int]:
    """Joints, undirected edges and centre of a skeleton layout.

    Args:
        layout (str | Mapping): A name in :data:`NAMED_LAYOUTS` or a dict
            with ``num_node``, ``inward`` (0-based joint pairs) and
            ``center``.
        key (str): The config key of ``layout``, for error messages.
            Defaults to ``'model.backbone.graph_cfg.layout'``.

    Returns:
        tuple[int, list[tuple[int, int]], int]: The number of joints, the
        edges (each once, as given) and the centre joint.

    Raises:
        ConfigError: For an unknown layout name, a dict without the three
            keys, an edge or centre outside ``[0, num_node)``, or joints not
            connected to the rest of the skeleton (a hierarchy and hop
            distances need one connected graph).
    """
    if isinstance(layout, str):
        if layout not in NAMED_LAYOUTS:
            raise ConfigError(
                f'{key}: unknown skeleton layout {layout!r}; use one of '
                f'{NAMED_LAYOUTS} or dict(num_node=..., inward=[...], '
                'center=...)')
        graph = Graph(layout=layout, mode='binary_adj')
        num_node, inward, center = graph.num_node, graph.inward, graph.center
    elif isinstance(layout, Mapping):
        missing = [k for k in ('num_node', 'inward', 'center')
                   if k not in layout]
        if missing:
            raise ConfigError(f'{key}: layout dict lacks {missing}; it needs '
                              'num_node, inward and center')
        num_node = check_int(layout['num_node'], f'{key}.num_node', 1)
        inward = layout['inward']
        center = layout['center']
    else:
        raise ConfigError(f'{key}: unsupported skeleton layout {layout!r}; '
                          f'use one of {NAMED_LAYOUTS} or a layout dict')
    edges = [(int(i), int(j)) for i, j in inward]
    bad = [e for e in edges if not all(0 <= v < num_node for v in e)]
    if bad:
        raise ConfigError(f'{key}: edges {bad} name joints outside '
                          f'[0, {num_node})')
    check_int(center, f'{key}.center', 0, num_node - 1)
    unreached = np.flatnonzero(hop_distances(num_node, edges)[center] < 0)
    if unreached.size:
        raise ConfigError(f'{key}: joints {unreached.tolist()} are not '
                          f'connected to the centre joint {center}')
    return num_node, edges, center


def _neighbours(num_node: int, edges: Sequence[Edge]) -> List[List[int]]:
    """Sorted neighbour lists of the undirected graph."""
    neighbours = [set() for _ in range(num_node)]
    for i, j in edges:
        if i != j:
            neighbours[i].add(j)
            neighbours[j].add(i)
    return [sorted(n) for n in neighbours]


def hop_distances(num_node: int, edges: Sequence[Edge]) -> np.ndarray:
    """Shortest-path lengths (in edges) between all joints, by BFS.

    Args:
        num_node (int): Number of joints.
        edges (Sequence[tuple[int, int]]): Undirected edges.

    Returns:
        np.ndarray: ``(V, V)`` int64 hop distances; ``-1`` where no path
        exists.
    """
    neighbours = _neighbours(num_node, edges)
    hops = np.full((num_node, num_node), -1, dtype=np.int64)
    for source in range(num_node):
        hops[source, source] = 0
        queue = deque([source])
        while queue:
            joint = queue.popleft()
            for other in neighbours[joint]:
                if hops[source, other] < 0:
                    hops[source, other] = hops[source, joint] + 1
                    queue.append(other)
    return hops


def hierarchy_levels(num_node: int, edges: Sequence[Edge],
                     center: int) -> List[List[int]]:
    """HD-GCN's joint sets: the joints grouped by hop distance to ``center``.

    Set ``k`` holds the joints ``k`` edges away from the centre, the
    hierarchy the paper builds by hand for NTU RGB+D.

    Args:
        num_node (int): Number of joints.
        edges (Sequence[tuple[int, int]]): Undirected, connected edges.
        center (int): The centre joint (HD-GCN's centre of mass).

    Returns:
        list[list[int]]: Sorted joints of each set, from the centre outwards.
    """
    distance = hop_distances(num_node, edges)[center]
    return [
        np.flatnonzero(distance == k).tolist()
        for k in range(int(distance.max()) + 1)
    ]


def hierarchical_adjacency(levels: Sequence[Sequence[int]],
                           num_node: int) -> np.ndarray:
    """HD-Graph: one 3-subset adjacency per pair of consecutive joint sets.

    For sets ``k`` and ``k + 1`` the subsets are the identity on both sets,
    the edges from every joint of set ``k`` to every joint of set ``k + 1``
    (centrifugal) and their reverse (centripetal). Connecting the sets
    completely links joints of the same depth in different limbs (both hands,
    both feet), which the physical skeleton does not. Each directed subset
    is normalised as mmaction2's ``'spatial'`` mode normalises its own.

    Args:
        levels (Sequence[Sequence[int]]): Joint sets from
            :func:`hierarchy_levels`, at least two.
        num_node (int): Number of joints.

    Returns:
        np.ndarray: ``(L, 3, V, V)`` float32 with ``L = len(levels) - 1``;
        entry ``[l, s, v, u]`` weighs joint ``u``'s message to joint ``v``.
    """
    subsets = []
    for inner, outer in zip(levels[:-1], levels[1:]):
        identity = edge2mat([(j, j) for j in list(inner) + list(outer)],
                            num_node)
        outward = [(u, v) for u in inner for v in outer]
        inward = [(v, u) for u, v in outward]
        subsets.append(
            np.stack((identity, normalize_digraph(edge2mat(outward,
                                                           num_node)),
                      normalize_digraph(edge2mat(inward, num_node)))))
    return np.stack(subsets).astype(np.float32)


#: Input batch norms a skeleton backbone can apply (``data_bn_type``).
DATA_BN_TYPES = ('MVC', 'VC', 'none')


def build_data_bn(bn_type: str, channels: int, num_joints: int,
                  num_person: int = 2) -> nn.Module:
    """The input batch norm of a skeleton backbone.

    A bare ``BatchNorm1d`` (or ``Identity``), so a backbone that keeps it as
    ``self.data_bn`` has the checkpoint keys ``data_bn.*`` of CTR-GCN's.

    Args:
        bn_type (str): ``'MVC'`` (per person, joint and channel), ``'VC'``
            (shared over persons) or ``'none'``.
        channels (int): Channels per joint.
        num_joints (int): Joints V.
        num_person (int): Persons M, used by ``'MVC'``. Defaults to 2.

    Returns:
        nn.Module: The batch norm; :func:`normalize_skeletons` applies it.
    """
    check_choice(bn_type, DATA_BN_TYPES, 'model.backbone.data_bn_type')
    if bn_type == 'MVC':
        return nn.BatchNorm1d(num_person * channels * num_joints)
    if bn_type == 'VC':
        return nn.BatchNorm1d(channels * num_joints)
    return nn.Identity()


def normalize_skeletons(data_bn: nn.Module, bn_type: str, num_person: int,
                        x: torch.Tensor, owner: str) -> torch.Tensor:
    """Apply a :func:`build_data_bn` norm: (N, M, T, V, C) -> (N*M, C, T, V).

    Args:
        data_bn (nn.Module): The norm :func:`build_data_bn` returned.
        bn_type (str): Its ``bn_type``.
        num_person (int): Its ``num_person``.
        x (Tensor): Skeletons (N, M, T, V, C).
        owner (str): The backbone's name, for the error message.

    Raises:
        ValueError: For ``'MVC'`` and inputs with another number of persons.
    """
    N, M, T, V, C = x.shape
    if bn_type == 'MVC' and M != num_person:
        raise ValueError(
            f'{owner} was built for num_person={num_person} (the '
            f"'MVC' data BN), got inputs with {M} persons; set "
            'FormatGCNInput(num_person=...) and the backbone to match')
    x = x.permute(0, 1, 3, 4, 2).contiguous()  # N, M, V, C, T
    if bn_type == 'MVC':
        x = data_bn(x.view(N, M * V * C, T))
    else:
        x = data_bn(x.view(N * M, V * C, T))
    return x.view(N * M, V, C, T).permute(0, 2, 3, 1).contiguous()


def check_graph_cfg(graph_cfg: Dict) -> Union[str, Mapping]:
    """The layout of a ``graph_cfg``, refusing keys nothing reads."""
    if not isinstance(graph_cfg, Mapping) or 'layout' not in graph_cfg:
        raise ConfigError('model.backbone.graph_cfg must be dict(layout=...), '
                          f'got {graph_cfg!r}')
    refuse_unknown_keys(graph_cfg, ('layout', ), 'model.backbone.graph_cfg')
    return graph_cfg['layout']


__all__ = [
    'DATA_BN_TYPES', 'NAMED_LAYOUTS', 'build_data_bn', 'check_graph_cfg',
    'hierarchical_adjacency', 'hierarchy_levels', 'hop_distances',
    'normalize_skeletons', 'resolve_layout'
]
