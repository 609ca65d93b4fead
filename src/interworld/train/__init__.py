"""interworld.train"""
