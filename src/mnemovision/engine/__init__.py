"""Training glue on mmengine: the only subpackage (with each method's ``engine``) that imports mmengine.

``build_runner(config, work_dir, resume, cfg_options, launcher)`` turns a Python config file into a
``MnemoRunner``; ``mnemovision train`` and ``mnemovision test`` are thin wrappers around it.
"""

from mnemovision.engine.runner import MnemoRunner, allow_mmengine_checkpoints, build_runner, config_type, load_config, parse_cfg_options, resolve_config

__all__ = ["MnemoRunner", "allow_mmengine_checkpoints", "build_runner", "config_type", "load_config", "parse_cfg_options", "resolve_config"]
