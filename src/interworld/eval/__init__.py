"""interworld.eval"""
