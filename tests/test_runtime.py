"""Tests of the process-wide patches in :mod:`cocodiff_mm.runtime`.

Each patch is tested twice: its effect in this process (``conftest`` imports
``cocodiff_mm`` and calls ``runtime.setup()``, as the tools do) and, where a
fresh interpreter can show it, the problem it works around, in a subprocess
that leaves that one patch out. The problem tests only assert a failure when
the patch's own condition holds on this machine and skip with the reason
otherwise. Then: ``setup()`` applies nothing twice, importing the package
applies only the import-time fixes, and building a ``TwoStageLoop`` changes
nothing process-wide.
"""
import argparse
import importlib.metadata
import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Dict, Optional

import pytest
import torch

from cocodiff_mm import runtime

REPO = Path(__file__).resolve().parents[1]
RUNTIME_FILE = REPO / 'cocodiff_mm' / 'runtime.py'

DRN_MODULE = 'mmaction.models.localizers.drn.drn'
VINDLU_MODULE = 'mmaction.models.multimodal.vindlu'


def run_python(code: str, timeout: float = 120,
               **env: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter from the repository root."""
    full_env = dict(os.environ, HF_HUB_OFFLINE='1', PYTHONWARNINGS='ignore')
    full_env.pop('COCODIFF_TRUST_CHECKPOINTS', None)
    full_env.update(env)
    return subprocess.run([sys.executable, '-c', textwrap.dedent(code)],
                          cwd=REPO,
                          env=full_env,
                          capture_output=True,
                          text=True,
                          timeout=timeout)


def run_without_fix(left_out: str, code: str) -> subprocess.CompletedProcess:
    """Run ``code`` after every import-time fix but ``left_out``.

    ``runtime.py`` is loaded as a standalone module, so importing it does
    not run ``cocodiff_mm/__init__.py`` (which applies every fix).
    """
    assert left_out in [fix.__name__ for fix in runtime.IMPORT_FIXES]
    prelude = f"""
        import importlib.util
        spec = importlib.util.spec_from_file_location(
            'runtime_alone', {str(RUNTIME_FILE)!r})
        runtime = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(runtime)
        for fix in runtime.IMPORT_FIXES:
            if fix.__name__ != {left_out!r}:
                fix()
    """
    return run_python(textwrap.dedent(prelude) + textwrap.dedent(code))


def drn_missing_from_wheel() -> bool:
    """The drn fix's condition: the wheel lacks ``localizers/drn/drn.py``."""
    root = runtime._package_dir('mmaction')
    return not (root / 'models/localizers/drn/drn.py').is_file()


def transformers_major() -> Optional[int]:
    """Major version of the installed transformers, ``None`` if absent."""
    try:
        return int(importlib.metadata.version('transformers').split('.')[0])
    except importlib.metadata.PackageNotFoundError:
        return None


def parse_lines(stdout: str) -> Dict[str, str]:
    return dict(
        line.split(': ', 1) for line in stdout.splitlines() if ': ' in line)


@pytest.fixture(scope='module')
def plain_interpreter() -> Dict[str, str]:
    """What a fresh interpreter WITHOUT cocodiff_mm sees (one subprocess)."""
    result = run_python("""
        import importlib.util, pathlib, torch
        root = pathlib.Path(
            importlib.util.find_spec('torchvision')
            .submodule_search_locations[0])
        libraries = sorted(root.glob('_C*.so')) + sorted(root.glob('_C*.pyd'))
        try:
            torch.ops.load_library(str(libraries[0]))
            print('LIB: loads')
        except (OSError, IndexError) as error:
            print('LIB: fails', type(error).__name__)
        try:
            torch.cuda.set_device(0)
            print('SET_DEVICE: ok')
        except Exception as error:
            print('SET_DEVICE: fails', type(error).__name__, error)
        try:
            import torchvision
            print('TORCHVISION: ok')
        except Exception as error:
            print('TORCHVISION: fails', type(error).__name__, error)
    """)
    assert result.returncode == 0, result.stderr[-2000:]
    return parse_lines(result.stdout)


@pytest.fixture(scope='module')
def fixed_interpreter() -> Dict[str, str]:
    """What a fresh interpreter that imports cocodiff_mm FIRST sees."""
    result = run_python(f"""
        import sys
        import cocodiff_mm
        from cocodiff_mm import runtime
        import torchvision
        import torchvision.transforms
        import mmaction.models
        print('APPLIED:', ','.join(sorted(runtime.APPLIED)))
        print('VINDLU:', {VINDLU_MODULE!r} in sys.modules)
        print('TORCHVISION:', torchvision.__version__)
    """)
    assert result.returncode == 0, (
        'importing cocodiff_mm, torchvision and mmaction.models failed:\n' +
        result.stderr[-3000:])
    return parse_lines(result.stdout)


# --------------------------------------------------------------------------
# mmaction2 wheel without localizers/drn
# --------------------------------------------------------------------------
def test_drn_stub_installed_iff_wheel_lacks_drn():
    import mmaction.models  # noqa: F401  (must import cleanly)
    from mmaction.models.localizers import DRN

    missing = drn_missing_from_wheel()
    assert ('drn_stub' in runtime.APPLIED) == missing
    module = sys.modules[DRN_MODULE]
    if missing:
        assert getattr(module, '__file__', None) is None  # our stand-in
        assert DRN is module.DRN
        with pytest.raises(ImportError, match='2714'):
            DRN()
    else:
        assert Path(module.__file__).name == 'drn.py'


def test_drn_stub_not_installed_twice():
    before = sys.modules.get(DRN_MODULE)
    assert runtime._stub_missing_drn_localizer() is False
    assert sys.modules.get(DRN_MODULE) is before


def test_import_mmaction_models_fails_without_drn_stub():
    if not drn_missing_from_wheel():
        pytest.skip('the installed mmaction2 ships localizers/drn: the drn '
                    'stub is not needed')
    result = run_without_fix('_stub_missing_drn_localizer',
                             'import mmaction.models\n')
    assert result.returncode != 0
    assert "No module named 'mmaction.models.localizers.drn'" in \
        result.stderr


def test_package_dir_of_absent_package_is_none():
    assert runtime._package_dir('no_such_package_cocodiff_xyz') is None
    assert runtime._package_dir('mmaction') == Path(
        importlib.util.find_spec('mmaction').submodule_search_locations[0])


# --------------------------------------------------------------------------
# torchvision's compiled ops
# --------------------------------------------------------------------------
def test_torchvision_imports_after_cocodiff_mm(fixed_interpreter,
                                               plain_interpreter):
    import torchvision

    assert fixed_interpreter['TORCHVISION'] == torchvision.__version__
    library_fails = plain_interpreter['LIB'].startswith('fails')
    applied = fixed_interpreter['APPLIED'].split(',')
    # The schemas are declared exactly when the compiled ops cannot load.
    assert ('torchvision_schemas' in applied) == library_fails


def test_torchvision_import_fails_without_cocodiff_mm(plain_interpreter):
    if plain_interpreter['LIB'].startswith('loads'):
        pytest.skip("torchvision's _C library loads with this torch: "
                    'the op-schema fix is not needed')
    assert plain_interpreter['TORCHVISION'].startswith('fails')
    assert 'operator torchvision::nms does not exist' in \
        plain_interpreter['TORCHVISION']


def test_torchvision_schemas_in_process():
    import torchvision  # noqa: F401  (must import cleanly)

    assert hasattr(torch.ops.torchvision, 'nms')
    if 'torchvision_schemas' in runtime.APPLIED:
        # Declared by us: the library object must stay alive.
        assert isinstance(runtime._TORCHVISION_SCHEMAS,
                          torch.library.Library)
    # Once torchvision is imported, the fix must not declare anything again.
    assert runtime._define_missing_torchvision_ops() is False


# --------------------------------------------------------------------------
# mmaction2's multimodal models and transformers >= 5
# --------------------------------------------------------------------------
def test_multimodal_disabled_iff_transformers_5():
    import mmaction.models  # noqa: F401
    import mmaction.utils.dependency as dependency

    major = transformers_major()
    if major is not None and major >= 5:
        assert 'multimodal_off' in runtime.APPLIED
        assert dependency.WITH_MULTIMODAL is False
        assert VINDLU_MODULE not in sys.modules
    else:
        assert 'multimodal_off' not in runtime.APPLIED


def test_fresh_import_skips_vindlu(fixed_interpreter):
    major = transformers_major()
    applied = fixed_interpreter['APPLIED'].split(',')
    assert ('multimodal_off' in applied) == (major is not None
                                            and major >= 5)
    if major is not None and major >= 5:
        assert fixed_interpreter['VINDLU'] == 'False'


def test_import_mmaction_models_fails_with_multimodal_on():
    major = transformers_major()
    if major is None or major < 5:
        pytest.skip(f'transformers {major or "absent"} < 5: mmaction2 '
                    'multimodal models import fine')
    result = run_without_fix('_disable_broken_multimodal',
                             'import mmaction.models\n')
    assert result.returncode != 0
    assert 'apply_chunking_to_forward' in result.stderr


def test_multimodal_fix_too_late_does_nothing():
    import mmaction.models  # noqa: F401

    assert runtime._disable_broken_multimodal() is False


# --------------------------------------------------------------------------
# mmcv-lite's warning
# --------------------------------------------------------------------------
def test_mmcv_lite_warning_is_filtered():
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        runtime._quiet_mmcv_lite_warning()
        warnings.warn('Fail to import ``MultiScaleDeformableAttention`` '
                      'from ``mmcv.ops.multi_scale_deform_attn``')
    assert caught == []
    assert 'mmcv_lite_warning_off' in runtime.APPLIED


# --------------------------------------------------------------------------
# torch.cuda.set_device without CUDA
# --------------------------------------------------------------------------
def test_set_device_is_a_noop_without_cuda():
    # conftest called runtime.setup(), as the tools do
    if torch.cuda.is_available():
        assert 'cpu_safe_set_device' not in runtime.APPLIED
        assert not getattr(torch.cuda.set_device, '_cocodiff_cpu_safe',
                           False)
        pytest.skip('CUDA is available: set_device keeps its behaviour')
    assert 'cpu_safe_set_device' in runtime.APPLIED
    assert torch.cuda.set_device(0) is None
    assert torch.cuda.set_device(torch.device('cuda', 1)) is None
    assert torch.cuda.set_device._cocodiff_cpu_safe is True


def test_set_device_fails_without_cocodiff_mm(plain_interpreter):
    if torch.cuda.is_available():
        pytest.skip('CUDA is available: set_device(0) works natively')
    assert plain_interpreter['SET_DEVICE'].startswith('fails')


# --------------------------------------------------------------------------
# Atomic local files, checkpoint loading, the allocator
# --------------------------------------------------------------------------
def test_local_files_are_written_atomically():
    from mmengine.fileio import get_file_backend

    from cocodiff_mm.engine.atomic_checkpoints import AtomicLocalBackend

    assert 'atomic_local_files' in runtime.APPLIED
    assert isinstance(get_file_backend('/tmp/epoch_1.pth'),
                      AtomicLocalBackend)


def test_mmengine_checkpoint_types_are_allowed():
    from mmengine.logging import HistoryBuffer

    from cocodiff_mm.engine.checkpoint_safety import history_buffer_method

    allowed = torch.serialization.get_safe_globals()
    assert HistoryBuffer in allowed
    assert (history_buffer_method, 'builtins.getattr') in allowed
    assert 'checkpoint_types' in runtime.APPLIED
    # No trust without the opt-in: mmengine's own local loader stays.
    assert 'trusted_checkpoints' not in runtime.APPLIED


def test_allocator_kept_only_without_cuda():
    import ctypes.util

    glibc = sys.platform.startswith('linux') and \
        ctypes.util.find_library('c') is not None
    assert ('keep_freed_memory' in runtime.APPLIED) == (
        glibc and not torch.cuda.is_available())


def test_setup_fills_in_the_device_parts_of_a_config():
    from mmengine.config import Config

    cfg = Config(dict(launcher='pytorch'))
    runtime.setup(cfg)
    if torch.cuda.is_available():
        assert cfg.env_cfg.dist_cfg.backend == 'nccl'
    else:
        assert cfg.env_cfg.dist_cfg.backend == 'gloo'
        assert cfg.model_wrapper_cfg['device_ids'] is None


# --------------------------------------------------------------------------
# One set-up: idempotent, and only where it is called
# --------------------------------------------------------------------------
def test_setup_applies_nothing_twice(monkeypatch):
    """conftest called setup(): further calls change nothing at all."""
    import mmengine.fileio
    from mmengine.fileio.backends import registry_utils
    from mmengine.runner.checkpoint import CheckpointLoader

    calls = []

    def spy(name):
        return lambda *args, **kwargs: calls.append(name)

    monkeypatch.setattr(torch.serialization, 'add_safe_globals',
                        spy('add_safe_globals'))
    monkeypatch.setattr(mmengine.fileio, 'register_backend',
                        spy('register_backend'))
    monkeypatch.setattr(CheckpointLoader, 'register_scheme',
                        spy('register_scheme'))
    monkeypatch.setattr(runtime.ctypes.util, 'find_library',
                        spy('find_library'))
    monkeypatch.setattr(runtime.warnings, 'filterwarnings',
                        spy('filterwarnings'))
    applied = dict(runtime.APPLIED)
    set_device = torch.cuda.set_device
    local = registry_utils.backends['local']
    drn = sys.modules.get(DRN_MODULE)
    assert runtime.setup() is runtime.APPLIED
    assert runtime.setup() is runtime.APPLIED
    assert runtime.import_fixes() is runtime.APPLIED
    assert calls == []
    assert runtime.APPLIED == applied
    assert torch.cuda.set_device is set_device  # not wrapped twice
    assert registry_utils.backends['local'] is local
    assert sys.modules.get(DRN_MODULE) is drn


def test_import_applies_only_the_import_fixes_and_setup_is_idempotent():
    """A fresh interpreter: ``import cocodiff_mm`` leaves the process
    patches off; the first ``setup()`` applies them, the second nothing."""
    result = run_python("""
        import torch
        set_device = torch.cuda.set_device
        import cocodiff_mm
        from cocodiff_mm import runtime
        from mmengine.fileio.backends.registry_utils import backends
        from mmengine.logging import HistoryBuffer
        from mmengine.runner.checkpoint import CheckpointLoader

        def state():
            return (torch.cuda.set_device, backends['local'],
                    sorted(map(repr, torch.serialization.get_safe_globals())),
                    dict(runtime.APPLIED),
                    CheckpointLoader._get_checkpoint_loader('a.pth'))

        imported = state()
        print('IMPORT_PATCHED:', torch.cuda.set_device is not set_device,
              backends['local'].__name__,
              HistoryBuffer in torch.serialization.get_safe_globals())
        print('IMPORT_APPLIED:', ','.join(sorted(runtime.APPLIED)))
        runtime.setup()
        first = state()
        print('SETUP_PATCHED:', torch.cuda.set_device is not set_device,
              backends['local'].__name__,
              HistoryBuffer in torch.serialization.get_safe_globals())
        calls = []
        add = torch.serialization.add_safe_globals
        torch.serialization.add_safe_globals = lambda *a: calls.append(a)
        runtime.setup()
        torch.serialization.add_safe_globals = add
        print('SECOND_SAME:', state() == first and not calls)
        print('SAME_LOADER:', first[4] is imported[4])
        print('NEW:', ','.join(sorted(set(first[3]) - set(imported[3]))))
    """)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = parse_lines(result.stdout)
    assert lines['IMPORT_PATCHED'] == 'False LocalBackend False'
    assert not {'cpu_safe_set_device', 'atomic_local_files',
                'checkpoint_types', 'keep_freed_memory'} & set(
                    lines['IMPORT_APPLIED'].split(','))
    no_cuda = not torch.cuda.is_available()
    assert lines['SETUP_PATCHED'] == f'{no_cuda} AtomicLocalBackend True'
    assert lines['SECOND_SAME'] == 'True'
    assert lines['SAME_LOADER'] == 'True'  # no trust without the opt-in
    assert {'atomic_local_files', 'checkpoint_types'} <= set(
        lines['NEW'].split(','))


def test_building_a_two_stage_loop_changes_no_global_state(
        monkeypatch, tmp_path, ntu60_pickle):
    """The loop only plans stages: the file backend, the checkpoint
    allow-list and ``set_device`` are ``runtime.setup()``'s, not its."""
    from mmengine.config import Config, DictAction
    from mmengine.fileio import LocalBackend
    from mmengine.fileio.backends import registry_utils
    from mmengine.runner import Runner

    from cocodiff_mm.engine import TwoStageLoop
    from conftest import tiny_options

    namespace = argparse.Namespace()
    DictAction(option_strings=[], dest='options')(
        None, namespace, tiny_options(ntu60_pickle) + [
            'model.cls_head.text_bank.encoder=random',
            'model.cls_head.denoiser.widths=(32,)'
        ])
    cfg = Config.fromfile('configs/ctrgcn_cocodiff_ntu60_xsub.py')
    cfg.merge_from_dict(namespace.options)
    cfg.work_dir = str(tmp_path)
    runner = Runner.from_cfg(cfg)

    # As before runtime.setup(): mmengine's own local backend.
    monkeypatch.setitem(registry_utils.backends, 'local', LocalBackend)
    monkeypatch.setitem(registry_utils.prefix_to_backends, '', LocalBackend)
    calls = []
    monkeypatch.setattr(torch.serialization, 'add_safe_globals',
                        lambda *args: calls.append(args))
    set_device = torch.cuda.set_device
    loop = runner.train_loop
    assert isinstance(loop, TwoStageLoop)
    assert registry_utils.backends['local'] is LocalBackend
    assert registry_utils.prefix_to_backends[''] is LocalBackend
    assert calls == []
    assert torch.cuda.set_device is set_device
