"""prodcat.data"""
