"""A write that fails part-way (a full disk) keeps the previous file and
leaves no temporary file: ``atomic_path`` itself. The writers built on it
(training checkpoints, the export, annotations, text banks) under a full
disk are in ``tests/test_faults.py``."""
import errno
import os

import pytest
import torch

from cocodiff_mm.engine.inference_export import export_inference_checkpoint
from cocodiff_mm.utils.atomic_write import atomic_path, atomic_write_json
from conftest import write_ddp_checkpoint


def disk_full(path) -> OSError:
    """Write half of some bytes to ``path``, then fail as a full disk."""
    with open(path, 'wb') as file:
        file.write(b'half of the new con')
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


def test_atomic_path_replaces_on_success(tmp_path):
    dst = tmp_path / 'sub' / 'result.json'
    with atomic_path(dst) as tmp_name:
        assert os.path.dirname(tmp_name) == str(dst.parent)
        assert not dst.exists()
        with open(tmp_name, 'w') as file:
            file.write('new')
    assert dst.read_text() == 'new'
    assert oct(dst.stat().st_mode & 0o777) == oct(0o644)
    assert os.listdir(dst.parent) == ['result.json']


def test_atomic_path_keeps_previous_file_on_enospc(tmp_path):
    dst = tmp_path / 'result.json'
    atomic_write_json(dst, dict(version=1))
    before = dst.read_bytes()
    with pytest.raises(OSError) as info:
        with atomic_path(dst) as tmp_name:
            raise disk_full(tmp_name)
    assert info.value.errno == errno.ENOSPC
    assert dst.read_bytes() == before
    assert os.listdir(tmp_path) == ['result.json']


def test_atomic_path_leaves_nothing_when_there_was_no_file(tmp_path):
    with pytest.raises(OSError):
        with atomic_path(tmp_path / 'new.bin') as tmp_name:
            raise disk_full(tmp_name)
    assert os.listdir(tmp_path) == []


def test_export_strips_module_prefix_and_training_keys(tmp_path):
    src, dst = tmp_path / 'epoch_3.pth', tmp_path / 'inference.pth'
    write_ddp_checkpoint(src)
    dropped = export_inference_checkpoint(str(src), str(dst))
    assert dropped == ('cls_head.denoiser.weight', )
    exported = torch.load(dst, weights_only=False)
    assert list(exported['state_dict']) == [
        'backbone.weight', 'cls_head.fc.weight']
    assert exported['meta']['epoch'] == 3
    assert sorted(os.listdir(tmp_path)) == ['epoch_3.pth', 'inference.pth']

