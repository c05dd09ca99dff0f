"""mmengine adapters for VOS training (the only vos modules that import mmengine)."""

from mnemovision.vos.engine.trainer import JointFormerTrainer, bootstrapped_ce, dice_loss, export_jointformer

__all__ = ["JointFormerTrainer", "bootstrapped_ce", "dice_loss", "export_jointformer"]
