"""VOS networks: JointFormer (one builder per family)."""

from mnemovision.vos.models.jointformer import JointFormer, build_jointformer, convert_official_jointformer

__all__ = ["JointFormer", "build_jointformer", "convert_official_jointformer"]
