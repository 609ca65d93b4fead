"""interworld.engine"""
