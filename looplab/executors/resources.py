"""Until looplab/config.py imports ResourcesConfig from looplab.resources: the config must not depend on an executor."""

from looplab.resources import ResourcesConfig

__all__ = ["ResourcesConfig"]
