"""prodcat.text"""
