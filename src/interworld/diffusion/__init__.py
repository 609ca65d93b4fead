"""interworld.diffusion"""
