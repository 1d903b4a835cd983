"""The stand-in's cupyx.scipy (only `special` is modelled)."""


def __getattr__(name):
    if name == "special":
        from . import special
        return special
    raise AttributeError(f"the CuPy stand-in does not model cupyx.scipy.{name}")
