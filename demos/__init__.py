"""Gradio demos (installed as ``mnemovision.demos``). ``hub.build_app()`` assembles one tab per area;
tabs use only the public APIs of the packages they show."""
