"""interworld.cli"""
