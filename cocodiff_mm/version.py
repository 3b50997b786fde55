"""Version of the cocodiff_mm package."""
__version__ = '0.1.0'
