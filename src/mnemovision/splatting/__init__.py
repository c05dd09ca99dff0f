"""3D Gaussian splatting: the scene model, posed-image scenes, fitting and rendering (see DESIGN.md).

Importing this package loads nothing heavy; use the submodules: ``splatting.gaussians``,
``splatting.data.scene``, ``splatting.data.synthetic``, ``splatting.fit``, ``splatting.render``.
"""
