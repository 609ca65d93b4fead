"""interworld.models"""
