"""Install cocodiff_mm. The pinned stack is installed by ``make install``."""
from pathlib import Path

from setuptools import find_packages, setup


def read_version() -> str:
    """Read ``__version__`` without importing the package."""
    namespace = {}
    exec(Path('cocodiff_mm/version.py').read_text(), namespace)
    return namespace['__version__']


def read_requirements(name: str) -> list:
    """Requirement lines of ``requirements/<name>.txt`` without comments."""
    lines = Path('requirements', f'{name}.txt').read_text().splitlines()
    return [line for line in lines if line and not line.startswith('#')]


setup(
    name='cocodiff_mm',
    version=read_version(),
    description='CoCoDiff (coarse-fine text-co-guided latent diffusion) for '
    'skeleton action recognition in mmaction2',
    long_description=Path('README.md').read_text(encoding='utf-8'),
    long_description_content_type='text/markdown',
    python_requires='>=3.10,<3.13',
    packages=find_packages(include=['cocodiff_mm', 'cocodiff_mm.*']),
    package_data={'cocodiff_mm': ['texts/*.json']},
    include_package_data=True,
    # mmaction2, mmcv-lite and mmengine are installed with --no-deps by
    # tools/install_env.py: their declared dependencies break cv2.
    install_requires=read_requirements('runtime'),
    extras_require={
        'minilm': read_requirements('minilm'),
        'tests': read_requirements('tests'),
        'onnx': read_requirements('onnx'),
        'tensorboard': read_requirements('tensorboard'),
    },
    zip_safe=False,
)
