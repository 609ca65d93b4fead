"""interworld.io"""
