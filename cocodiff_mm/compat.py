"""Runtime fixes for the pinned OpenMMLab stack.

Each fix checks whether its problem is present on this machine and does
nothing otherwise, so a later release that fixes the problem upstream simply
turns the fix off. ``apply_all()`` runs the fixes that only make imports
work, and is called by ``import cocodiff_mm`` before any of mmaction2's
models is imported. Fixes that change how the process runs
(:func:`make_set_device_cpu_safe`, and checkpoint loading in
:mod:`cocodiff_mm.engine.checkpoint_safety`) are applied by the tools'
launch path only (:func:`cocodiff_mm.engine.launch.prepare_to_run`).

The facts behind each fix are listed in the README (Troubleshooting).
"""
import importlib.metadata
import importlib.util
import sys
import types
import warnings
from pathlib import Path
from typing import Dict, Optional

import torch

#: Names of the fixes that were applied in this process, with a short reason.
APPLIED: Dict[str, str] = {}


def _package_dir(name: str) -> Optional[Path]:
    """Directory of an installed top-level package, without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def stub_missing_drn_localizer() -> bool:
    """Stand in for ``mmaction.models.localizers.drn`` when the wheel lacks it.

    The mmaction2 1.2.0 wheel ships ``localizers/__init__.py`` importing
    ``.drn.drn`` but not the ``drn`` folder (open-mmlab/mmaction2#2714), so
    ``import mmaction.models`` fails. The stand-in ``DRN`` raises if anybody
    actually builds it.

    Returns:
        bool: Whether the stand-in was installed.
    """
    root = _package_dir('mmaction')
    if root is None or (root / 'models/localizers/drn/drn.py').is_file():
        return False
    if 'mmaction.models.localizers.drn.drn' in sys.modules:
        return False

    class DRN:  # noqa: D401 - a placeholder, not a model
        """Placeholder for the DRN localizer missing from the wheel."""

        def __init__(self, *args, **kwargs):
            raise ImportError(
                'DRN is not part of the installed mmaction2 wheel '
                '(open-mmlab/mmaction2#2714); install mmaction2 from source '
                'to use it.')

    package = types.ModuleType('mmaction.models.localizers.drn')
    package.__path__ = []  # mark it as a package
    module = types.ModuleType('mmaction.models.localizers.drn.drn')
    module.DRN = DRN
    package.DRN = DRN
    package.drn = module
    sys.modules[package.__name__] = package
    sys.modules[module.__name__] = module
    APPLIED['drn_stub'] = 'mmaction2 wheel lacks localizers/drn (#2714)'
    return True


def define_missing_torchvision_ops() -> bool:
    """Declare torchvision's op schemas when its compiled ops cannot load.

    The torchvision 0.28.0 wheel on PyPI is built for CUDA; with a CPU torch
    its ``_C`` library does not load and ``import torchvision`` dies with
    ``operator torchvision::nms does not exist`` (pytorch/vision#9085).
    mmengine's Runner and open_clip import torchvision. Declaring the two
    schemas its import registers fake kernels for makes the import work; the
    compiled ops themselves stay unavailable (skeleton models do not use them).

    Returns:
        bool: Whether the schemas were declared.
    """
    if 'torchvision' in sys.modules:
        return False
    root = _package_dir('torchvision')
    if root is None:
        return False
    libraries = sorted(root.glob('_C*.so')) + sorted(root.glob('_C*.pyd'))
    if libraries:
        try:
            torch.ops.load_library(str(libraries[0]))
            return False  # the real ops are there
        except OSError:
            pass
    if hasattr(torch.ops.torchvision, 'nms'):
        return False
    # Kept alive for the whole process: dropping the Library object would
    # unregister the schemas.
    library = torch.library.Library('torchvision', 'DEF')
    library.define(
        'nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor')
    library.define('qnms(Tensor dets, Tensor scores, float iou_threshold) '
                   '-> Tensor')
    globals()['_TORCHVISION_SCHEMAS'] = library
    APPLIED['torchvision_schemas'] = (
        'torchvision compiled ops missing for this torch (vision#9085)')
    return True


def make_set_device_cpu_safe() -> bool:
    """Make ``torch.cuda.set_device`` a no-op on machines without CUDA.

    mmengine 0.10.7's ``_init_dist_pytorch`` (``mmengine/dist/utils.py``)
    calls ``torch.cuda.set_device(local_rank)`` unconditionally, so
    ``--launcher pytorch`` on CPU (gloo) fails before training starts; we
    found no upstream issue for it (the nearest, open-mmlab/mmengine#567,
    asks for custom dist backends).

    Returns:
        bool: Whether ``set_device`` was replaced.
    """
    if torch.cuda.is_available():
        return False
    if getattr(torch.cuda.set_device, '_cocodiff_cpu_safe', False):
        return False

    def set_device(device) -> None:  # noqa: ARG001 - nothing to select
        """No CUDA device exists; keep the process on the CPU."""

    set_device._cocodiff_cpu_safe = True
    torch.cuda.set_device = set_device
    APPLIED['cpu_safe_set_device'] = 'no CUDA device on this machine'
    return True


def disable_broken_multimodal() -> bool:
    """Keep mmaction2 from importing multimodal models transformers 5 breaks.

    With transformers installed (the MiniLM extra pulls it), mmaction2
    imports its VindLU models, whose ``modeling_bert.py`` imports
    ``apply_chunking_to_forward`` from ``transformers.modeling_utils``, gone
    in transformers 5 (it lives in ``transformers.pytorch_utils``; the same
    breakage elsewhere: xinyu1205/recognize-anything#219). We found no
    mmaction2 issue for it. Skeleton recognition needs none of these models.

    Returns:
        bool: Whether the multimodal models were switched off.
    """
    try:
        version = importlib.metadata.version('transformers')
    except importlib.metadata.PackageNotFoundError:
        return False
    if int(version.split('.')[0]) < 5:
        return False
    if 'mmaction.models' in sys.modules:
        return False
    import mmaction.utils.dependency as dependency
    dependency.WITH_MULTIMODAL = False
    APPLIED['multimodal_off'] = f'transformers {version} breaks VindLU'
    return True


def quiet_mmcv_lite_warning() -> None:
    """Silence mmcv-lite's warning about its missing compiled attention op.

    mmcv-lite ships no compiled ops by design (we install it because no
    ``mmcv`` wheel exists for this torch, see the README); skeleton models
    never use ``MultiScaleDeformableAttention``, yet every import warns.
    """
    warnings.filterwarnings(
        'ignore', message='Fail to import ``MultiScaleDeformableAttention``')


def apply_all() -> Dict[str, str]:
    """Apply every fix whose problem is present; safe to call repeatedly.

    Returns:
        dict: ``APPLIED``: the fixes active in this process.
    """
    quiet_mmcv_lite_warning()
    stub_missing_drn_localizer()
    define_missing_torchvision_ops()
    disable_broken_multimodal()
    return APPLIED
