"""mmengine adapters for Gaussian scenes (the only splatting modules that import mmengine).

``fit_scene(data_root, out_dir, iterations)`` runs the bundled recipe (config ``splat_bundled``) on any
scene folder; ``mnemovision train splat_bundled`` runs it on the bundled scene.
"""

from mnemovision.splatting.engine.hooks import SplatResultsHook, final_result
from mnemovision.splatting.engine.run import fit_scene, scene_config
from mnemovision.splatting.engine.scene_model import GaussianOptimConstructor, GaussianScene, SceneMetric, SceneViews, scene_for

__all__ = ["GaussianOptimConstructor", "GaussianScene", "SceneMetric", "SceneViews", "SplatResultsHook", "final_result", "fit_scene", "scene_config", "scene_for"]
