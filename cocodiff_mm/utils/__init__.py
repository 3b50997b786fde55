"""Small helpers shared across the package."""
from .atomic_write import (atomic_path, atomic_write_bytes, atomic_write_json,
                           atomic_write_text)

__all__ = [
    'atomic_path', 'atomic_write_bytes', 'atomic_write_json',
    'atomic_write_text'
]
