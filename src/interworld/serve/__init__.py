"""interworld.serve"""
