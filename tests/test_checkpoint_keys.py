"""The ``module.`` prefix of DDP checkpoints is removed as mmengine does."""
import torch
import torch.nn as nn
from mmengine.runner.checkpoint import load_checkpoint

from cocodiff_mm.engine.checkpoint_keys import (DEFAULT_REVISE_KEYS,
                                                revise_state_dict_keys)
from cocodiff_mm.engine.pretrained_gcn import (load_gcn_weights,
                                               read_gcn_checkpoint)


def test_revise_keys_strips_one_leading_module():
    state = {'module.a': 1, 'module.module.b': 2, 'head.module.c': 3, 'd': 4}
    revised = revise_state_dict_keys(state)
    assert list(revised) == ['a', 'module.b', 'head.module.c', 'd']
    assert list(state) == ['module.a', 'module.module.b', 'head.module.c',
                           'd']  # not modified
    assert DEFAULT_REVISE_KEYS == ((r'^module\.', ''), )
    # Pairs apply in order, as mmengine's revise_keys do.
    assert list(revise_state_dict_keys(
        state, [(r'^module\.', ''), (r'^module\.', 'net.')])) == [
            'a', 'net.b', 'head.module.c', 'd']


def test_same_keys_as_mmengine_load_checkpoint(tmp_path):
    model = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    path = tmp_path / 'ddp.pth'
    state = {f'module.{k}': v + 1 for k, v in model.state_dict().items()}
    torch.save(dict(state_dict=state), path)
    reference = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    load_checkpoint(reference, str(path), strict=True)
    assert revise_state_dict_keys(state).keys() == \
        reference.state_dict().keys()


class TinyRecognizer(nn.Module):
    """Backbone, classifier and a training-only part, like CoCoDiff's."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Linear(2, 3)
        self.cls_head = nn.Module()
        self.cls_head.fc = nn.Linear(3, 4)
        self.cls_head.denoiser = nn.Linear(3, 3)


def test_pretrained_gcn_reads_a_ddp_checkpoint(tmp_path):
    trained = TinyRecognizer()
    path = tmp_path / 'baseline.pth'
    torch.save(dict(state_dict={f'module.{k}': v
                                for k, v in trained.state_dict().items()}),
               path)
    model = TinyRecognizer()
    state = read_gcn_checkpoint(str(path), model)
    assert sorted(state) == ['backbone.bias', 'backbone.weight',
                             'cls_head.fc.bias', 'cls_head.fc.weight']
    load_gcn_weights(model, state)
    assert torch.equal(model.backbone.weight, trained.backbone.weight)
    assert torch.equal(model.cls_head.fc.bias, trained.cls_head.fc.bias)
    assert not torch.equal(model.cls_head.denoiser.weight,
                           trained.cls_head.denoiser.weight)


def test_a_kept_read_is_handed_over_once(tmp_path, monkeypatch):
    """tools/train.py reads train_cfg.pretrained before the Runner exists
    (keep=True); the loop built later takes those tensors instead of
    reading the file again, and is still checked against its model."""
    from cocodiff_mm.engine import pretrained_gcn

    path = tmp_path / 'baseline.pth'
    torch.save(dict(state_dict=TinyRecognizer().state_dict()), path)
    kept = read_gcn_checkpoint(str(path), TinyRecognizer(), keep=True)
    reads = []
    original = pretrained_gcn.read_checkpoint
    monkeypatch.setattr(pretrained_gcn, 'read_checkpoint',
                        lambda p: reads.append(p) or original(p))
    assert read_gcn_checkpoint(str(path), TinyRecognizer()) is kept
    assert reads == []
    # Handed over once: the next read reads the file.
    assert read_gcn_checkpoint(str(path), TinyRecognizer()) is not kept
    assert reads == [str(path)]
    # A file changed since is read again, not taken from the kept read.
    kept = read_gcn_checkpoint(str(path), TinyRecognizer(), keep=True)
    torch.save(dict(state_dict=TinyRecognizer().state_dict(),
                    meta=dict(epoch=2)), path)
    assert read_gcn_checkpoint(str(path), TinyRecognizer()) is not kept
    assert reads == [str(path)] * 3
