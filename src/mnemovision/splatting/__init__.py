"""mnemovision.splatting: see DESIGN.md in this folder for its layers and what it may import.

The method code arrives with its issues; the package exists so the layering is fixed from the start.
"""
