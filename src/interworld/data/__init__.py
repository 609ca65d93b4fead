"""interworld.data"""
