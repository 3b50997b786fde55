"""Choose the distributed backend and DDP wrapper for the machine at hand."""
import torch
from mmengine.config import Config
from mmengine.logging import print_log


def configure_device(cfg: Config) -> Config:
    """Fill in the device-dependent parts of a config, in place.

    * ``env_cfg.dist_cfg.backend``: ``'nccl'`` with CUDA, ``'gloo'`` without
      (a config that names NCCL on a machine without CUDA is switched to gloo
      with a warning).
    * Without CUDA, DDP must not receive ``device_ids``: mmengine's default
      wrapper passes ``[LOCAL_RANK]``, which DDP rejects for CPU modules.

    Args:
        cfg (Config): The full config (read by ``tools/train.py`` or
            ``tools/test.py``).

    Returns:
        Config: The same config.
    """
    has_cuda = torch.cuda.is_available()
    # Config.setdefault would return a detached plain dict: assign instead.
    if cfg.get('env_cfg') is None:
        cfg.env_cfg = dict()
    if cfg.env_cfg.get('dist_cfg') is None:
        cfg.env_cfg.dist_cfg = dict()
    dist_cfg = cfg.env_cfg.dist_cfg
    backend = dist_cfg.get('backend')
    if backend is None:
        dist_cfg['backend'] = 'nccl' if has_cuda else 'gloo'
    elif backend == 'nccl' and not has_cuda:
        print_log(
            'env_cfg.dist_cfg.backend is nccl but CUDA is not available; '
            'using gloo', logger='current', level=30)
        dist_cfg['backend'] = 'gloo'

    if not has_cuda and cfg.get('launcher', 'none') != 'none':
        wrapper = cfg.get('model_wrapper_cfg') or {}
        wrapper = dict(wrapper)
        wrapper.setdefault('type', 'MMDistributedDataParallel')
        wrapper['device_ids'] = None
        wrapper.setdefault('broadcast_buffers', False)
        cfg.model_wrapper_cfg = wrapper
    return cfg
