"""The registry of supported products: name -> :class:`landimg.data.product.Product`."""

from __future__ import annotations

from landimg.data import alma, cci, cmfd, era5, gldas, gridded, smap
from landimg.data.common import DataError
from landimg.data.product import KINDS, Product

__all__ = ["KINDS", "Product", "get_product", "product_names"]


def _registry() -> dict[str, Product]:
    products: list[Product] = [
        smap.SPL3SMP,
        smap.SPL3SMP_E,
        cci.ESACCI,
        gridded.GRIDDED,
        gldas.GLDAS_SM,
        gldas.GLDAS_FORCING,
        era5.ERA5LAND_SM,
        era5.ERA5_FORCING,
        era5.ERA5LAND_FORCING,
        cmfd.CMFD,
        alma.ALMA,
    ]
    return {p.name: p for p in products}


def product_names(kind: str | None = None) -> list[str]:
    """Names of the supported gridded products (of one kind, or all)."""
    return [n for n, p in _registry().items() if kind is None or p.kind == kind]


def get_product(name: str) -> Product:
    """The product called ``name`` (case-insensitive); DataError listing the known names otherwise."""
    reg = _registry()
    key = str(name).strip().lower().replace("-", "_")
    if key not in reg:
        raise DataError(
            f"--product: unknown product {name!r}; known: {', '.join(sorted(reg))} (and ismn for stations)"
        )
    return reg[key]
