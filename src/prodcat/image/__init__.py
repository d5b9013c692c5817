"""prodcat.image"""
