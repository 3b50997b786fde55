"""The suite's guard for Runners built in one second (tests/conftest.py).

mmengine names a Runner's logger, message hub and visualizer after the
config and the second the Runner was built in, and hands an existing one
back: without the guard, the second of two Runners built in one second
logs into the first one's work dir and shares its runtime info.
"""
import logging
import time

from mmengine.config import Config
from mmengine.runner import Runner

from conftest import REPO


def test_two_runners_of_one_second_keep_their_own_logs(tmp_path,
                                                       monkeypatch):
    monkeypatch.setattr(time, 'strftime', lambda *args: '20260101_000000')
    runners = []
    for name in ('first', 'second'):
        # Built, not run: the loaders and their data are not read.
        cfg = Config.fromfile(str(REPO / 'configs' / 'ctrgcn_ntu60_xsub.py'))
        cfg.work_dir = str(tmp_path / name)
        runners.append(Runner.from_cfg(cfg))
    first, second = runners
    assert first.experiment_name == second.experiment_name
    assert first.logger is not second.logger
    assert first.message_hub is not second.message_hub
    files = [[h.baseFilename for h in r.logger.handlers
              if isinstance(h, logging.FileHandler)] for r in runners]
    assert files[0][0].startswith(str(tmp_path / 'first'))
    assert files[1][0].startswith(str(tmp_path / 'second'))
    first.message_hub.update_info('seen', 1)
    assert second.message_hub.get_info('seen') is None
