"""The demo behind ``make demo``: CoCoDiff end to end on embedded data.

1. generates the procedural demo skeletons (``data/skeleton/demo_3d.pkl``);
2. trains the baseline CTR-GCN (``configs/ctrgcn_demo.py``);
3. trains CoCoDiff's stages 1 and 2 from that baseline checkpoint
   (``configs/ctrgcn_cocodiff_demo.py``; stage 0 is skipped because a
   baseline exists: the "reuse a baseline checkpoint" way);
4. evaluates both on the held-out performers and prints a table.

Every step is a command a user can run alone; they are printed as they
run. Uses CUDA when available, the CPU otherwise.
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

ROOT = Path(__file__).resolve().parent.parent
BASELINE_CONFIG = 'configs/ctrgcn_demo.py'
COCODIFF_CONFIG = 'configs/ctrgcn_cocodiff_demo.py'
DATA = 'data/skeleton/demo_3d.pkl'


def run(command: List[str]) -> float:
    """Run a command from the repository root; return its wall time."""
    print('\n$ ' + ' '.join(command), flush=True)
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True)
    return time.perf_counter() - start


def last_checkpoint(work_dir: Path) -> str:
    """The checkpoint of the final epoch in ``work_dir``."""
    pointer = work_dir / 'last_checkpoint'
    if pointer.is_file():
        return pointer.read_text().strip()
    found = sorted(glob.glob(str(work_dir / 'epoch_*.pth')),
                   key=lambda p: int(Path(p).stem.split('_')[1]))
    if not found:
        raise FileNotFoundError(f'no checkpoint in {work_dir}')
    return found[-1]


def evaluate(config: str, checkpoint: str, work_dir: Path) -> Dict:
    """Run tools/test.py and read back its metrics."""
    out = work_dir / 'test_metrics.json'
    run([
        sys.executable, 'tools/test.py', config, checkpoint, '--work-dir',
        str(work_dir / 'test'), '--metrics-out',
        str(out)
    ])
    return json.loads(out.read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    work = ROOT / args.work_dir
    python = sys.executable
    os.environ.setdefault('HF_HUB_OFFLINE', '1')

    total = time.perf_counter()
    if not (ROOT / DATA).is_file():
        run([python, 'tools/data/make_demo_data.py', '--out', DATA])
    seed = ['--seed', str(args.seed)]

    base_dir = work / 'baseline'
    base_time = run([
        python, 'tools/train.py', BASELINE_CONFIG, '--work-dir',
        str(base_dir), *seed
    ])
    base_ckpt = last_checkpoint(base_dir)

    cocodiff_dir = work / 'cocodiff'
    run([
        python, 'tools/train.py', COCODIFF_CONFIG, '--work-dir',
        str(cocodiff_dir), *seed, '--cfg-options',
        f'train_cfg.pretrained={base_ckpt}'
    ])
    cocodiff_ckpt = last_checkpoint(cocodiff_dir)
    stage_times = json.loads((cocodiff_dir / 'stage_times.json').read_text())

    base_metrics = evaluate(BASELINE_CONFIG, base_ckpt, base_dir)
    cocodiff_metrics = evaluate(COCODIFF_CONFIG, cocodiff_ckpt, cocodiff_dir)

    rows = [
        ('CTR-GCN (baseline)', base_metrics, f'{base_time:.0f} s (whole run)'),
        ('CTR-GCN + CoCoDiff', cocodiff_metrics,
         f'stage 1: {stage_times.get("stage1", 0):.0f} s, '
         f'stage 2: {stage_times.get("stage2", 0):.0f} s'),
    ]
    print('\nDemo results (held-out performers, 8 classes, chance 12.5%)')
    print(f'{"model":<22} {"top-1":>7} {"top-5":>7}  training time')
    for name, metrics, timing in rows:
        print(f'{name:<22} {100 * metrics["acc/top1"]:6.1f}% '
              f'{100 * metrics["acc/top5"]:6.1f}%  {timing}')
    print(f'\nCheckpoints and logs: {base_dir} and {cocodiff_dir}')
    print(f'Inference-only CoCoDiff checkpoint: python '
          f'tools/export_inference_ckpt.py {cocodiff_ckpt} '
          f'{cocodiff_dir / "inference.pth"} --config {BASELINE_CONFIG}')
    print(f'Total demo time: {time.perf_counter() - total:.0f} s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
