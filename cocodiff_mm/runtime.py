"""Every process-wide patch of the project, behind one idempotent entry point.

Each patch checks whether its problem is present and does nothing otherwise,
so an upstream release that fixes the problem turns the patch off. Each runs
at most once per process; those that changed something are listed, with
their reason, in :data:`APPLIED`. The facts behind them are in
``docs/install.md`` (Troubleshooting).

Import-time fixes, :func:`import_fixes`, run by ``import cocodiff_mm``
(configs load the package through ``custom_imports``, before any tool code,
so these cannot wait for :func:`setup`). They only make imports work:

* ``drn_stub``: the mmaction2 1.2.0 wheel lacks ``localizers/drn``
  (open-mmlab/mmaction2#2714), so ``import mmaction.models`` fails.
* ``torchvision_schemas``: the PyPI torchvision is a CUDA build whose
  compiled ops do not load with a CPU torch (pytorch/vision#9085), so
  ``import torchvision`` (mmengine's Runner, open_clip) fails.
* ``multimodal_off``: with transformers >= 5 mmaction2's VindLU models do
  not import, and ``import mmaction.models`` imports them.
* ``mmcv_lite_warning_off``: mmcv-lite has no compiled ops by design and
  warns about one on every import.

Process patches, :func:`setup`, called by the tools (``tools/train.py``,
``tools/test.py`` and ``tools/analysis/visualize_features.py`` through
:func:`~cocodiff_mm.engine.launch.prepare_to_run`; ``tools/infer.py``,
``tools/export_inference_ckpt.py``, ``tools/deployment/export_onnx.py`` and
``tools/benchmark_training.py`` directly) and by Python-API users before
``Runner.from_cfg`` (``docs/user_guide.md``, "Using the Python API"). They
change how the process runs, so importing the package leaves them off. ``setup(cfg)`` also fills in
the config's device-dependent parts (:mod:`cocodiff_mm.engine.device`).

* ``cpu_safe_set_device``: mmengine's ``_init_dist_pytorch`` calls
  ``torch.cuda.set_device`` unconditionally, which fails without CUDA.
* ``atomic_local_files``: mmengine's local file backend writes into the real
  file, so a full disk leaves a half-written checkpoint under the real name.
* ``checkpoint_types``: ``torch.load`` defaults to ``weights_only=True``
  and mmengine checkpoints hold a few other objects (open-mmlab/mmengine#1655).
* ``trusted_checkpoints``: only with ``COCODIFF_TRUST_CHECKPOINTS`` set to
  ``1``, ``true`` or ``yes``, an explicit opt-in to the full unpickler for
  checkpoints the user trusts; unset, ``0``, ``false``, ``no`` and ``off``
  leave it off, and any other value is a ``ConfigError`` (tools: one line,
  exit 2) rather than a guess.
* ``keep_freed_memory``: without CUDA, glibc hands a step's freed
  activations back to the system and page-faults them in again on the next
  step (``tools/benchmark_training.py``; figures in ``docs/results.md``).
"""
import ctypes
import ctypes.util
import importlib.metadata
import importlib.util
import os
import sys
import types
import warnings
from pathlib import Path
from typing import Callable, Dict, Optional, Set, Tuple

import torch

#: Patches that changed this process, with a short reason.
APPLIED: Dict[str, str] = {}

#: Names of the patch functions already run (each runs at most once).
_RUN: Set[str] = set()

#: ``mallopt`` parameters of glibc's malloc.h.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

#: Largest mmap threshold glibc accepts (HEAP_MAX / 2 on 64-bit).
MAX_MMAP_THRESHOLD = 32 * 2**20


def _package_dir(name: str) -> Optional[Path]:
    """Directory of an installed top-level package, without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


# --------------------------------------------------------------------------
# Import-time fixes
# --------------------------------------------------------------------------
def _stub_missing_drn_localizer() -> bool:
    """Stand in for ``mmaction.models.localizers.drn`` when the wheel lacks
    it; the stand-in ``DRN`` raises if anybody builds it."""
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


def _define_missing_torchvision_ops() -> bool:
    """Declare the two op schemas torchvision's import registers fake
    kernels for, when its compiled library cannot load; the compiled ops
    themselves stay unavailable (skeleton models do not use them)."""
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


def _disable_broken_multimodal() -> bool:
    """Set ``mmaction.utils.dependency.WITH_MULTIMODAL = False`` before
    ``mmaction.models`` is imported, with transformers >= 5 installed.

    VindLU's ``modeling_bert.py`` imports ``apply_chunking_to_forward`` from
    ``transformers.modeling_utils``, gone in transformers 5 (the same
    breakage elsewhere: xinyu1205/recognize-anything#219). Skeleton
    recognition needs none of these models.
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


def _quiet_mmcv_lite_warning() -> bool:
    """Silence mmcv-lite's warning about its missing compiled attention op
    (skeleton models never use ``MultiScaleDeformableAttention``)."""
    warnings.filterwarnings(
        'ignore', message='Fail to import ``MultiScaleDeformableAttention``')
    APPLIED['mmcv_lite_warning_off'] = 'mmcv-lite ships no compiled ops'
    return True


# --------------------------------------------------------------------------
# Process patches
# --------------------------------------------------------------------------
def _make_set_device_cpu_safe() -> bool:
    """Make ``torch.cuda.set_device`` a no-op on machines without CUDA, so
    ``--launcher pytorch`` (gloo) starts on a CPU machine."""
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


def _use_atomic_local_files() -> bool:
    """Make mmengine write local files (checkpoints, ``last_checkpoint``)
    with :class:`~cocodiff_mm.engine.atomic_checkpoints.AtomicLocalBackend`.

    Backends already cached for local paths are dropped, so a hook that
    built its backend earlier gets the atomic one on its next lookup.
    """
    from mmengine.fileio import io as mmengine_io
    from mmengine.fileio import register_backend

    from .engine.atomic_checkpoints import AtomicLocalBackend
    register_backend('local', AtomicLocalBackend, force=True, prefixes='')
    for key in [k for k in mmengine_io.backend_instances
                if k.startswith(':')]:
        mmengine_io.backend_instances.pop(key)
    APPLIED['atomic_local_files'] = (
        'mmengine writes checkpoints into the real file')
    return True


def _configure_checkpoint_loading() -> bool:
    """Allow-list mmengine's checkpoint types for ``weights_only=True``;
    with ``COCODIFF_TRUST_CHECKPOINTS`` on (see
    :func:`~cocodiff_mm.engine.checkpoint_safety.trust_checkpoints_requested`,
    which refuses a value it does not know), replace mmengine's local loader
    by the full unpickler, and say so (rank 0)."""
    from .engine.checkpoint_safety import (TRUST_ENV, load_trusted,
                                           mmengine_checkpoint_globals,
                                           trust_checkpoints_requested)
    if hasattr(torch.serialization, 'add_safe_globals'):  # torch >= 2.4
        torch.serialization.add_safe_globals(mmengine_checkpoint_globals())
        APPLIED['checkpoint_types'] = (
            'mmengine checkpoints hold HistoryBuffer and numpy objects '
            '(mmengine#1655)')
    if not trust_checkpoints_requested():
        return True
    from mmengine.runner.checkpoint import CheckpointLoader
    CheckpointLoader.register_scheme(
        prefixes='', loader=load_trusted, force=True)
    APPLIED['trusted_checkpoints'] = f'{TRUST_ENV} is set'
    if os.environ.get('RANK', '0') == '0':
        print(f'warning: {TRUST_ENV} is set: local checkpoints load with '
              'the full unpickler (only load files you trust)',
              file=sys.stderr)
    return True


def _keep_freed_memory() -> bool:
    """Raise glibc's trim and mmap thresholds on machines without CUDA, so
    freed memory stays mapped for the next step (the peak is unchanged);
    ``False`` where CUDA is available or glibc is not there."""
    if torch.cuda.is_available() or not sys.platform.startswith('linux'):
        return False
    name = ctypes.util.find_library('c')
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    trimmed = mallopt(M_TRIM_THRESHOLD, 2**31 - 1)
    mapped = mallopt(M_MMAP_THRESHOLD, MAX_MMAP_THRESHOLD)
    if not (trimmed and mapped):
        return False
    APPLIED['keep_freed_memory'] = 'glibc gives freed activations back'
    return True


#: Run by :func:`import_fixes`, in this order.
IMPORT_FIXES: Tuple[Callable[[], bool], ...] = (
    _quiet_mmcv_lite_warning, _stub_missing_drn_localizer,
    _define_missing_torchvision_ops, _disable_broken_multimodal)

#: Run by :func:`setup` after the import-time fixes, in this order.
PROCESS_PATCHES: Tuple[Callable[[], bool], ...] = (
    _make_set_device_cpu_safe, _use_atomic_local_files, _keep_freed_memory,
    _configure_checkpoint_loading)


def _run_once(patches: Tuple[Callable[[], bool], ...]) -> None:
    for patch in patches:
        if patch.__name__ not in _RUN:
            _RUN.add(patch.__name__)
            patch()


def import_fixes() -> Dict[str, str]:
    """Apply the fixes that make ``import mmaction.models`` and ``import
    torchvision`` work; ``import cocodiff_mm`` calls it. Idempotent.

    Returns:
        dict: :data:`APPLIED`.
    """
    _run_once(IMPORT_FIXES)
    return APPLIED


def setup(cfg=None) -> Dict[str, str]:
    """Set up this process to run: every patch of this module, once.

    Call it before ``Runner.from_cfg``. A second call applies nothing again
    (the checkpoint-trust variable is read by the first call).

    Args:
        cfg (Config, optional): A run's config; its device-dependent parts
            (distributed backend, DDP ``device_ids``) are filled in for this
            machine, in place, by
            :func:`~cocodiff_mm.engine.device.configure_device` (on every
            call: it is per config). Defaults to None.

    Returns:
        dict: :data:`APPLIED`.
    """
    _run_once(IMPORT_FIXES + PROCESS_PATCHES)
    if cfg is not None:
        from .engine.device import configure_device
        configure_device(cfg)
    return APPLIED
