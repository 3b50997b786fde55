"""Tests of the runtime fixes in :mod:`cocodiff_mm.compat`.

Each fix is tested twice: its effect in this process (``conftest`` imports
``cocodiff_mm`` first) and, where a fresh interpreter can show it, the
problem it works around, in a subprocess that leaves that one fix out. The
problem tests only assert a failure when the fix's own condition holds on
this machine and skip with the reason otherwise.
"""
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

import cocodiff_mm  # noqa: F401  (runtime fixes before mmaction2)
from cocodiff_mm import compat

REPO = Path(__file__).resolve().parents[1]
COMPAT_FILE = REPO / 'cocodiff_mm' / 'compat.py'

DRN_MODULE = 'mmaction.models.localizers.drn.drn'
VINDLU_MODULE = 'mmaction.models.multimodal.vindlu'

#: The fixes other than the one a subprocess leaves out.
FIXES = ('stub_missing_drn_localizer', 'define_missing_torchvision_ops',
         'make_set_device_cpu_safe', 'disable_broken_multimodal')


def run_python(code: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter from the repository root."""
    env = dict(os.environ, HF_HUB_OFFLINE='1', PYTHONWARNINGS='ignore')
    return subprocess.run([sys.executable, '-c', textwrap.dedent(code)],
                          cwd=REPO,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=timeout)


def run_without_fix(left_out: str, code: str) -> subprocess.CompletedProcess:
    """Run ``code`` after every fix but ``left_out``.

    ``compat.py`` is loaded as a standalone module, so importing it does not
    run ``cocodiff_mm/__init__.py`` (which applies every fix).
    """
    assert left_out in FIXES
    prelude = f"""
        import importlib.util
        spec = importlib.util.spec_from_file_location(
            'compat_alone', {str(COMPAT_FILE)!r})
        compat = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(compat)
        for name in {FIXES!r}:
            if name != {left_out!r}:
                getattr(compat, name)()
    """
    return run_python(textwrap.dedent(prelude) + textwrap.dedent(code))


def drn_missing_from_wheel() -> bool:
    """The drn fix's condition: the wheel lacks ``localizers/drn/drn.py``."""
    root = compat._package_dir('mmaction')
    return not (root / 'models/localizers/drn/drn.py').is_file()


def transformers_major() -> Optional[int]:
    """Major version of the installed transformers, ``None`` if absent."""
    try:
        return int(importlib.metadata.version('transformers').split('.')[0])
    except importlib.metadata.PackageNotFoundError:
        return None


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
    lines = dict(
        line.split(': ', 1) for line in result.stdout.splitlines()
        if ': ' in line)
    return lines


@pytest.fixture(scope='module')
def fixed_interpreter() -> Dict[str, str]:
    """What a fresh interpreter that imports cocodiff_mm FIRST sees."""
    result = run_python(f"""
        import sys
        import cocodiff_mm
        from cocodiff_mm import compat
        import torchvision
        import torchvision.transforms
        import mmaction.models
        print('APPLIED:', ','.join(sorted(compat.APPLIED)))
        print('VINDLU:', {VINDLU_MODULE!r} in sys.modules)
        print('TORCHVISION:', torchvision.__version__)
    """)
    assert result.returncode == 0, (
        'importing cocodiff_mm, torchvision and mmaction.models failed:\n' +
        result.stderr[-3000:])
    return dict(
        line.split(': ', 1) for line in result.stdout.splitlines()
        if ': ' in line)


# --------------------------------------------------------------------------
# mmaction2 wheel without localizers/drn
# --------------------------------------------------------------------------
def test_drn_stub_installed_iff_wheel_lacks_drn():
    import mmaction.models  # noqa: F401  (must import cleanly)
    from mmaction.models.localizers import DRN

    missing = drn_missing_from_wheel()
    assert ('drn_stub' in compat.APPLIED) == missing
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
    assert compat.stub_missing_drn_localizer() is False
    assert sys.modules.get(DRN_MODULE) is before


def test_import_mmaction_models_fails_without_drn_stub():
    if not drn_missing_from_wheel():
        pytest.skip('the installed mmaction2 ships localizers/drn: the drn '
                    'stub is not needed')
    result = run_without_fix('stub_missing_drn_localizer',
                             'import mmaction.models\n')
    assert result.returncode != 0
    assert "No module named 'mmaction.models.localizers.drn'" in \
        result.stderr


def test_package_dir_of_absent_package_is_none():
    assert compat._package_dir('no_such_package_cocodiff_xyz') is None
    assert compat._package_dir('mmaction') == Path(
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
    if 'torchvision_schemas' in compat.APPLIED:
        # Declared by us: the library object must stay alive.
        assert isinstance(compat._TORCHVISION_SCHEMAS, torch.library.Library)
    # Once torchvision is imported, the fix must not declare anything again.
    assert compat.define_missing_torchvision_ops() is False


# --------------------------------------------------------------------------
# torch.cuda.set_device without CUDA
# --------------------------------------------------------------------------
def test_set_device_is_a_noop_without_cuda():
    compat.make_set_device_cpu_safe()  # the tools' launch path does this
    if torch.cuda.is_available():
        assert 'cpu_safe_set_device' not in compat.APPLIED
        assert not getattr(torch.cuda.set_device, '_cocodiff_cpu_safe',
                           False)
        pytest.skip('CUDA is available: set_device keeps its behaviour')
    assert 'cpu_safe_set_device' in compat.APPLIED
    assert torch.cuda.set_device(0) is None
    assert torch.cuda.set_device(torch.device('cuda', 1)) is None
    assert torch.cuda.set_device._cocodiff_cpu_safe is True


def test_set_device_fails_without_cocodiff_mm(plain_interpreter):
    if torch.cuda.is_available():
        pytest.skip('CUDA is available: set_device(0) works natively')
    assert plain_interpreter['SET_DEVICE'].startswith('fails')


# --------------------------------------------------------------------------
# mmaction2's multimodal models and transformers >= 5
# --------------------------------------------------------------------------
def test_multimodal_disabled_iff_transformers_5():
    import mmaction.models  # noqa: F401
    import mmaction.utils.dependency as dependency

    major = transformers_major()
    if major is not None and major >= 5:
        assert 'multimodal_off' in compat.APPLIED
        assert dependency.WITH_MULTIMODAL is False
        assert VINDLU_MODULE not in sys.modules
    else:
        assert 'multimodal_off' not in compat.APPLIED


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
    result = run_without_fix('disable_broken_multimodal',
                             'import mmaction.models\n')
    assert result.returncode != 0
    assert 'apply_chunking_to_forward' in result.stderr


def test_multimodal_fix_too_late_does_nothing():
    import mmaction.models  # noqa: F401

    assert compat.disable_broken_multimodal() is False


# --------------------------------------------------------------------------
# apply_all
# --------------------------------------------------------------------------
def test_apply_all_is_idempotent():
    from mmengine.runner.checkpoint import CheckpointLoader

    applied = dict(compat.APPLIED)
    set_device = torch.cuda.set_device
    drn = sys.modules.get(DRN_MODULE)
    schemes = list(CheckpointLoader._schemes)
    first = compat.apply_all()
    second = compat.apply_all()
    assert first is compat.APPLIED and second is compat.APPLIED
    assert compat.APPLIED == applied
    assert torch.cuda.set_device is set_device
    assert sys.modules.get(DRN_MODULE) is drn
    assert list(CheckpointLoader._schemes) == schemes
    # Every fix that changes the process says it did nothing the 2nd time.
    assert compat.stub_missing_drn_localizer() is False
    assert compat.define_missing_torchvision_ops() is False
    compat.make_set_device_cpu_safe()
    assert compat.make_set_device_cpu_safe() is False
    assert compat.disable_broken_multimodal() is False
