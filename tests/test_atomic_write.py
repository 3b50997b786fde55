"""A write that fails part-way (a full disk) keeps the previous file and
leaves no temporary file: ``atomic_path`` and every writer built on it."""
import errno
import os
import pickle

import pytest
import torch

from cocodiff_mm.datasets import pickle_io
from cocodiff_mm.engine.inference_export import export_inference_checkpoint
from cocodiff_mm.models.text.text_bank import load_bank_file, save_bank_file
from cocodiff_mm.utils.atomic_write import atomic_path, atomic_write_json


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


def write_training_checkpoint(path) -> None:
    """A DDP-style checkpoint: a ``module.`` prefix on every key."""
    state = {
        'module.backbone.weight': torch.ones(2, 3),
        'module.cls_head.fc.weight': torch.ones(4, 2),
        'module.cls_head.denoiser.weight': torch.ones(5),
    }
    torch.save(dict(meta=dict(epoch=3), state_dict=state), path)


def test_export_keeps_previous_file_on_enospc(tmp_path, monkeypatch):
    src, dst = tmp_path / 'epoch_3.pth', tmp_path / 'inference.pth'
    write_training_checkpoint(src)
    dst.write_bytes(b'previous export')

    def save(obj, path, *args, **kwargs):
        raise disk_full(path)

    monkeypatch.setattr(torch, 'save', save)
    with pytest.raises(OSError) as info:
        export_inference_checkpoint(str(src), str(dst))
    assert info.value.errno == errno.ENOSPC
    assert dst.read_bytes() == b'previous export'
    assert sorted(os.listdir(tmp_path)) == ['epoch_3.pth', 'inference.pth']


def test_export_strips_module_prefix_and_training_keys(tmp_path):
    src, dst = tmp_path / 'epoch_3.pth', tmp_path / 'inference.pth'
    write_training_checkpoint(src)
    dropped = export_inference_checkpoint(str(src), str(dst))
    assert dropped == ('cls_head.denoiser.weight', )
    exported = torch.load(dst, weights_only=False)
    assert list(exported['state_dict']) == [
        'backbone.weight', 'cls_head.fc.weight']
    assert exported['meta']['epoch'] == 3
    assert sorted(os.listdir(tmp_path)) == ['epoch_3.pth', 'inference.pth']


def test_annotations_keep_previous_file_on_enospc(tmp_path, monkeypatch):
    dst = tmp_path / 'ntu60.pkl'
    pickle_io.write_annotations(dst, dict(train=['a']), [dict(frame_dir='a')])
    before = dst.read_bytes()

    def dump(obj, file, *args, **kwargs):
        file.write(b'half')
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(pickle_io.pickle, 'dump', dump)
    with pytest.raises(OSError):
        pickle_io.write_annotations(dst, dict(train=['b']),
                                    [dict(frame_dir='b')])
    monkeypatch.undo()
    assert dst.read_bytes() == before
    assert pickle.loads(before)['split'] == dict(train=['a'])
    assert os.listdir(tmp_path) == ['ntu60.pkl']


def test_text_bank_keeps_previous_file_on_enospc(tmp_path, monkeypatch):
    import safetensors.torch

    dst = tmp_path / 'bank.safetensors'
    tensors = dict(fine_embeds=torch.ones(2, 3), coarse_embeds=torch.ones(2, 3),
                   fine_counts=torch.ones(2, dtype=torch.int64),
                   coarse_counts=torch.ones(2, dtype=torch.int64))
    save_bank_file(dst, tensors, dict(version='1'))
    before = dst.read_bytes()

    def save_file(payload, path, metadata=None):
        raise disk_full(path)

    monkeypatch.setattr(safetensors.torch, 'save_file', save_file)
    with pytest.raises(OSError):
        save_bank_file(dst, tensors, dict(version='2'))
    monkeypatch.undo()
    assert dst.read_bytes() == before
    assert load_bank_file(dst)[1] == dict(version='1')
    assert os.listdir(tmp_path) == ['bank.safetensors']
