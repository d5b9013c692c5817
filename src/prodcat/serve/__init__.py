"""prodcat.serve"""
