"""mmengine adapters for VOS training (the only vos modules that import mmengine)."""

from mnemovision.vos.engine.trainer import JointFormerTrainer, export_jointformer

__all__ = ["JointFormerTrainer", "export_jointformer"]
