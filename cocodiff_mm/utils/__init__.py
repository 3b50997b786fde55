"""Small helpers shared across the package."""
from .atomic_write import (atomic_path, atomic_write_bytes, atomic_write_json,
                           atomic_write_text)
from .checks import check_choice, check_int, is_int
from .config_keys import (ConfigError, ConfigKeyError, accepted_arguments,
                          refuse_unknown_keys)

__all__ = [
    'atomic_path', 'atomic_write_bytes', 'atomic_write_json',
    'atomic_write_text', 'ConfigError', 'ConfigKeyError', 'accepted_arguments',
    'refuse_unknown_keys', 'check_choice', 'check_int', 'is_int'
]
