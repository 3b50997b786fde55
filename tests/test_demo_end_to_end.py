"""`make demo`'s driver end to end (slow: several minutes on 2 CPU cores)."""
import re

import pytest

from conftest import run_ok


@pytest.mark.slow
def test_demo_trains_both_models_above_chance(tmp_path):
    result = run_ok('tools/demo.py', '--work-dir', str(tmp_path),
                    timeout=1800)
    rows = dict(
        re.findall(r'^(CTR-GCN[^%]*?)\s+([\d.]+)%', result.stdout, re.M))
    baseline = float(rows['CTR-GCN (baseline)'])
    cocodiff = float(rows['CTR-GCN + CoCoDiff'])
    # 8 classes: chance is 12.5%.
    assert baseline > 50 and cocodiff > 50
    assert (tmp_path / 'cocodiff' / 'stage_times.json').is_file()
